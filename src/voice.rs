//! The voice agent's tools, the SQL shell: argument checks against each tool's JSON Schema
//! (`crm._tool_check`, called by `crm.call_tool` before anything runs) and the manifest
//! (`crm.tool_manifest()`, `crm._mcp_tools()`). The manifest and the checks are
//! crm_core::voice; the tools and the MCP endpoint are SQL (sql/voice.sql).

use crate::json_arg::JsonbArg;
use pgrx::guc::*;
use pgrx::prelude::*;
use pgrx::JsonB;

pub static TOOL_CALLS_RETENTION_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(30 * 86400);

pub fn register() {
    GucRegistry::define_int_guc(
        c"crm.tool_calls_retention",
        c"How long crm.tool_calls keeps the voice agent's tool calls.",
        c"",
        &TOOL_CALLS_RETENTION_SECONDS,
        3600,
        10 * 365 * 86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
}

/// NULL when `args` are what tool `name` takes; else what is wrong, in one sentence an agent
/// can say ("scheduledStart: not a date"). Arguments over crm.max_json_argument_bytes: 54000.
#[pg_extern(stable, parallel_safe)]
fn _tool_check(name: &str, args: JsonbArg) -> Option<String> {
    let args = args.parse(
        "args",
        crate::guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
        "crm.call_tool",
    );
    crm_core::voice::check(name, &args).err()
}

/// Every tool with its description and JSON Schema, in MCP `tools/list` shape (the browser's
/// client tools marked `_meta."crm/clientTool"`).
#[pg_extern(immutable, parallel_safe)]
fn tool_manifest() -> JsonB {
    JsonB(crm_core::voice::manifest())
}

/// MCP `tools/list`'s result: the tools the server runs.
#[pg_extern(immutable, parallel_safe)]
fn _mcp_tools() -> JsonB {
    JsonB(crm_core::voice::mcp_tools())
}
