//! The voice agent's tools, as data: their manifest (`tools.json`: name, description, argument
//! properties, whether the user must confirm, whether the browser runs it), each tool's JSON
//! Schema (draft 2020-12) built from it, validation of a call's arguments into one sentence an
//! agent can say, and the two shapes the manifest is published in — MCP `tools/list` and an
//! ElevenLabs agent's tool configuration. The tools themselves are SQL (sql/voice.sql).

use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// ISO 8601 date and time, the offset optional (the account's time zone then).
pub const DATETIME_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$";
const EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s]+\.[^@\s]+$";
const UUID_PATTERN: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

#[derive(Debug, Deserialize)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// Sends, changes state or spends: the agent asks the user first.
    #[serde(default)]
    pub confirm: bool,
    /// Run by the browser (ElevenLabs client tool); the database only describes it.
    #[serde(default)]
    pub client: bool,
    properties: Map<String, Value>,
    #[serde(default)]
    required: Vec<String>,
    #[serde(rename = "anyOf", default)]
    any_of: Option<Value>,
    #[serde(rename = "minProperties", default)]
    min_properties: Option<u64>,
}

fn defs() -> Value {
    json!({
        "id": {"type": "string", "pattern": UUID_PATTERN, "description": "an id (uuid)"},
        "email": {"type": "string", "maxLength": 320, "pattern": EMAIL_PATTERN, "description": "an email address"},
        "datetime": {"type": "string", "maxLength": 40, "pattern": DATETIME_PATTERN,
                     "description": "ISO 8601 date and time, e.g. 2026-12-01T09:00; without an offset, in the account's time zone"},
        "name": {"type": "string", "minLength": 1, "maxLength": 200}
    })
}

impl Tool {
    /// The tool's JSON Schema (draft 2020-12), `$defs` included.
    pub fn schema(&self) -> Value {
        let mut s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": self.properties,
            "required": self.required,
            "additionalProperties": false,
            "$defs": defs(),
        });
        if let Some(a) = &self.any_of {
            s["anyOf"] = a.clone();
        }
        if let Some(m) = self.min_properties {
            s["minProperties"] = json!(m);
        }
        s
    }

    fn description_for_agents(&self) -> String {
        if self.confirm {
            format!("{} Needs confirmation: read back what it will do and ask the user before calling it.", self.description)
        } else {
            self.description.clone()
        }
    }

    /// An MCP `tools/list` entry.
    pub fn mcp(&self) -> Value {
        let read_only = !self.confirm
            && ["get_", "search_", "list_", "job_eta", "suggest_"]
                .iter()
                .any(|p| self.name.starts_with(p));
        let mut t = json!({
            "name": self.name,
            "description": self.description_for_agents(),
            "inputSchema": self.schema(),
            "annotations": {"readOnlyHint": read_only, "destructiveHint": self.confirm,
                            "openWorldHint": self.name.starts_with("send_") || self.name == "create_invoice_checkout"},
        });
        if self.client {
            t["_meta"] = json!({"crm/clientTool": true});
        }
        t
    }

    /// An ElevenLabs agent's tool: a server ("webhook") tool calling the tool's RPC, or a
    /// client tool the browser registers.
    pub fn elevenlabs(&self, base_url: &str) -> Value {
        let params = elevenlabs_schema(&self.schema(), &defs());
        if self.client {
            return json!({
                "type": "client",
                "name": self.name,
                "description": self.description_for_agents(),
                "parameters": params,
                "expects_response": self.name == "get_current_page",
            });
        }
        json!({
            "type": "webhook",
            "name": self.name,
            "description": self.description_for_agents(),
            "response_timeout_secs": 20,
            "api_schema": {
                "url": format!("{}/rest/v1/rpc/tool_{}", base_url.trim_end_matches('/'), self.name),
                "method": "POST",
                "request_headers": {
                    "apikey": "{{secret__supabase_anon_key}}",
                    "Authorization": "Bearer {{secret__jwt}}",
                    "Content-Type": "application/json",
                    "X-Conversation-Id": "{{system__conversation_id}}"
                },
                "request_body_schema": params,
            }
        })
    }
}

/// ElevenLabs' body schemas are a subset (type, description, properties, required, enum,
/// items): `$ref`s inlined, validation keywords left to the database, which checks them.
fn elevenlabs_schema(s: &Value, defs: &Value) -> Value {
    let s = match s.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|k| defs.get(k))
            .unwrap_or(s),
        None => s,
    };
    let mut out = Map::new();
    let ty = s.get("type").cloned().or_else(|| {
        s.get("enum")
            .map(|_| json!("string"))
            .or_else(|| s.get("properties").map(|_| json!("object")))
    });
    if let Some(t) = ty {
        out.insert("type".into(), t);
    }
    for k in ["description", "enum", "required"] {
        if let Some(v) = s.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(p) = s.get("properties").and_then(Value::as_object) {
        let props: Map<String, Value> = p
            .iter()
            .map(|(k, v)| (k.clone(), elevenlabs_schema(v, defs)))
            .collect();
        out.insert("properties".into(), Value::Object(props));
    }
    if let Some(i) = s.get("items") {
        out.insert("items".into(), elevenlabs_schema(i, defs));
    }
    Value::Object(out)
}

/// Every tool, in manifest order.
pub fn tools() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        serde_json::from_str(include_str!("tools.json")).expect("tools.json is a valid manifest")
    })
}

pub fn tool(name: &str) -> Option<&'static Tool> {
    tools().iter().find(|t| t.name == name)
}

fn validators() -> &'static HashMap<String, jsonschema::Validator> {
    static V: OnceLock<HashMap<String, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        tools()
            .iter()
            .map(|t| {
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&t.schema())
                    .expect("every tool's schema compiles");
                (t.name.clone(), v)
            })
            .collect()
    })
}

/// What one failed check means, said plainly: "scheduledStart: not a date".
fn sentence(e: &jsonschema::ValidationError) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let path = e.instance_path().to_string();
    let field = path.trim_start_matches('/').replace('/', ".");
    let what = match e.kind() {
        K::Required { property } => {
            let p = property.as_str().unwrap_or("a field").to_string();
            return format!("{p}: missing");
        }
        K::AdditionalProperties { unexpected } => {
            return format!("{}: not an argument of this tool", unexpected.join(", "));
        }
        K::AnyOf { .. } => "give one of the alternatives (an id or a name)".to_string(),
        K::MinProperties { .. } => "nothing to change".to_string(),
        K::Pattern { pattern } if pattern == DATETIME_PATTERN => "not a date".into(),
        K::Pattern { pattern } if pattern == EMAIL_PATTERN => "not an email address".into(),
        K::Pattern { pattern } if pattern == UUID_PATTERN => "not an id".into(),
        K::Pattern { .. } => "not in the expected form".into(),
        K::Type { .. } => "the wrong kind of value".into(),
        K::Enum { options } => format!("one of {options}"),
        K::MinLength { .. } => "empty".into(),
        K::MaxLength { limit } => format!("longer than {limit} characters"),
        K::Minimum { limit } => format!("less than {limit}"),
        K::Maximum { limit } => format!("more than {limit}"),
        K::MaxItems { limit } => format!("more than {limit} items"),
        K::MaxProperties { limit } => format!("more than {limit} entries"),
        _ => e.to_string(),
    };
    if field.is_empty() {
        what
    } else {
        format!("{field}: {what}")
    }
}

/// Check a call's arguments: Ok, or what is wrong in one sentence (the first problem).
pub fn check(name: &str, args: &Value) -> Result<&'static Tool, String> {
    let Some(tool) = tool(name) else {
        return Err(format!("unknown tool {name}"));
    };
    if tool.client {
        return Err(format!(
            "{name} is a client tool: the user's browser runs it, not the server"
        ));
    }
    let v = &validators()[name];
    match v.iter_errors(args).next() {
        None => Ok(tool),
        Some(e) => Err(sentence(&e)),
    }
}

/// MCP `tools/list`'s result: the server tools (client tools are the browser's).
pub fn mcp_tools() -> Value {
    json!({"tools": tools().iter().filter(|t| !t.client).map(Tool::mcp).collect::<Vec<_>>()})
}

/// The whole manifest in MCP's shape, client tools marked `_meta."crm/clientTool"`.
pub fn manifest() -> Value {
    json!({"tools": tools().iter().map(Tool::mcp).collect::<Vec<_>>()})
}

/// The tools as an ElevenLabs agent's configuration (`conversation_config.agent.prompt.tools`).
pub fn elevenlabs(base_url: &str) -> Value {
    json!({"tools": tools().iter().map(|t| t.elevenlabs(base_url)).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_compiles_and_is_named_once() {
        assert_eq!(tools().len(), 25);
        assert_eq!(validators().len(), 25);
        assert_eq!(tools().iter().filter(|t| t.client).count(), 2);
    }

    #[test]
    fn arguments_are_checked_into_sentences() {
        let ok = json!({"description": "Fix the leak", "contactName": "John", "scheduledStart": "2026-12-01T09:00"});
        assert!(check("create_job", &ok).is_ok());
        let bad = |name: &str, v: Value| check(name, &v).err().unwrap();
        assert_eq!(
            bad(
                "create_job",
                json!({"description": "x", "contactName": "John", "scheduledStart": "tomorrow"})
            ),
            "scheduledStart: not a date"
        );
        assert_eq!(
            bad("create_job", json!({"contactName": "John"})),
            "description: missing"
        );
        assert_eq!(
            bad("create_job", json!({"description": "x"})),
            "give one of the alternatives (an id or a name)"
        );
        assert_eq!(bad("get_job", json!({"jobId": "12"})), "jobId: not an id");
        assert_eq!(
            bad(
                "send_email",
                json!({"to": "nobody", "subject": "s", "body": "b"})
            ),
            "to: not an email address"
        );
        assert_eq!(
            bad(
                "get_job",
                json!({"jobId": "00000000-0000-0000-0000-000000000001", "x": 1})
            ),
            "x: not an argument of this tool"
        );
        assert!(bad(
            "update_job_status",
            json!({"jobId": "00000000-0000-0000-0000-000000000001", "status": "gone"})
        )
        .starts_with("status: one of"));
        assert_eq!(bad("get_job", json!([1])), "the wrong kind of value");
        assert!(bad("navigate", json!({"page": "jobs"})).contains("client tool"));
        assert_eq!(bad("drop_tables", json!({})), "unknown tool drop_tables");
    }

    #[test]
    fn published_shapes() {
        let list = mcp_tools();
        assert_eq!(list["tools"].as_array().unwrap().len(), 23);
        let t = &list["tools"][0];
        assert_eq!(
            t["inputSchema"]["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert!(t["description"]
            .as_str()
            .unwrap()
            .contains("Needs confirmation"));
        let el = elevenlabs("https://proj.supabase.co/");
        let job = el["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "create_job")
            .unwrap();
        assert_eq!(
            job["api_schema"]["url"],
            "https://proj.supabase.co/rest/v1/rpc/tool_create_job"
        );
        assert_eq!(
            job["api_schema"]["request_headers"]["Authorization"],
            "Bearer {{secret__jwt}}"
        );
        assert_eq!(
            job["api_schema"]["request_body_schema"]["properties"]["contactId"]["type"],
            "string"
        );
        assert!(job["api_schema"]["request_body_schema"]
            .to_string()
            .find("$ref")
            .is_none());
        let nav = el["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "navigate")
            .unwrap();
        assert_eq!(nav["type"], "client");
    }
}
