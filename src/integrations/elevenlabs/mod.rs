//! ElevenLabs: the voice agent's side of the CRM. Its tool configuration
//! (`crm.elevenlabs_tools(base_url)`: the manifest of crm_core::voice as server tools calling
//! PostgREST's `/rest/v1/rpc/tool_<name>` and client tools), and the settings of its post-call
//! webhook (verified in src/webhooks.rs with crm_core::webhooks::elevenlabs; applied in
//! sql/voice.sql).

use crate::guc::SECRET;
use pgrx::guc::*;
use pgrx::prelude::*;
use pgrx::JsonB;
use std::ffi::CString;

pub static ELEVENLABS_WEBHOOK_SECRET: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static ELEVENLABS_WEBHOOK_TOLERANCE: GucSetting<i32> = GucSetting::<i32>::new(1800);
pub static ELEVENLABS_STORE_AUDIO: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static ELEVENLABS_MAX_AUDIO_BYTES: GucSetting<i32> = GucSetting::<i32>::new(10 * 1024 * 1024);

pub fn register() {
    GucRegistry::define_string_guc(
        c"crm.elevenlabs_webhook_secret",
        c"ElevenLabs post-call webhook secrets (wsec_...), comma-separated while rolling (superuser only).",
        c"",
        &ELEVENLABS_WEBHOOK_SECRET,
        GucContext::Suset,
        SECRET,
    );
    GucRegistry::define_int_guc(
        c"crm.elevenlabs_webhook_tolerance",
        c"Largest accepted distance, either way, between an ElevenLabs signature's timestamp and now (0 = no check).",
        c"",
        &ELEVENLABS_WEBHOOK_TOLERANCE,
        0,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"crm.elevenlabs_store_audio",
        c"Keep post_call_audio's recording in crm.voice_calls (off: the event is acknowledged and dropped).",
        c"",
        &ELEVENLABS_STORE_AUDIO,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.elevenlabs_max_audio_bytes",
        c"Largest recording kept (decoded); a larger one is dropped and counted.",
        c"",
        &ELEVENLABS_MAX_AUDIO_BYTES,
        0,
        256 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
}

/// The tools as an ElevenLabs agent's tool configuration: server tools POSTing to
/// `{base_url}/rest/v1/rpc/tool_<name>` with the user's JWT (`{{secret__jwt}}`) and the
/// project's anon key, and the browser's client tools.
#[pg_extern(immutable, parallel_safe)]
fn elevenlabs_tools(base_url: &str) -> JsonB {
    let base = base_url.trim();
    if !(base.starts_with("https://") || base.starts_with("http://")) || base.len() > 2048 {
        crate::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "base_url must be the project's http(s) URL, e.g. https://<project>.supabase.co",
            None,
            "crm.elevenlabs_tools",
        );
    }
    JsonB(crm_core::voice::elevenlabs(base))
}
