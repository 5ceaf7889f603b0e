//! `pvesh get` for the API paths a runtime needs: `/cluster/nextid [--vmid N]`,
//! `/nodes/<node>/lxc` and `/nodes/<node>/lxc/<vmid>/status/current`.

use serde_json::{json, Value};

use crate::args::{check_vmid, parse, Arity, ParamErrors};
use crate::conf::{self, Conf};
use crate::layout::Layout;
use crate::{lxc, Failure, Warn};

const USAGE: &str = "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]";

pub fn main(layout: &Layout, argv: &[String]) -> Result<(), Failure> {
    let Some(verb) = argv.first() else {
        return Err(Failure::new(
            "ERROR: no command specified\n(pct stand-in's pvesh knows: get)",
        ));
    };
    if verb != "get" {
        return Err(Failure::new(format!(
            "ERROR: unknown command 'pvesh {verb}' (pct stand-in's pvesh knows: get)"
        )));
    }
    let p = parse(
        &argv[1..],
        &["api_path"],
        false,
        |name| match name {
            "vmid" | "output-format" => Some(Arity::Value),
            "noproxy" | "human-readable" | "noborder" | "noheader" => Some(Arity::Bool),
            _ => None,
        },
        USAGE,
    )?;
    let format = p
        .opts
        .get("output-format")
        .map(String::as_str)
        .unwrap_or("text");
    if !["text", "json", "json-pretty", "yaml"].contains(&format) {
        let mut e = ParamErrors::default();
        e.add(
            "output-format",
            format!("value '{format}' does not have a value in the enumeration 'text, json, json-pretty, yaml'"),
        );
        e.into_result(USAGE)?;
    }
    let path = p.pos[0].trim_end_matches('/').to_string();
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let value = match parts.as_slice() {
        ["cluster", "nextid"] => nextid(layout, p.opts.get("vmid").map(String::as_str))?,
        ["nodes", node, "lxc"] => {
            check_node(layout, node)?;
            let mut list = Vec::new();
            for vmid in layout.local_cts() {
                if let Ok(conf) = conf::load(layout, vmid, Warn::Stderr) {
                    list.push(vm_status(layout, vmid, &conf));
                }
            }
            Value::Array(list)
        }
        ["nodes", node, "lxc", vmid, "status", "current"] => {
            check_node(layout, node)?;
            let vmid = check_vmid(vmid).map_err(|e| {
                let mut errors = ParamErrors::default();
                errors.add("vmid", e);
                errors.into_result(USAGE).unwrap_err()
            })?;
            let conf = conf::load(layout, vmid, Warn::Stderr)?;
            vm_status(layout, vmid, &conf)
        }
        _ => {
            return Err(Failure::new(format!(
                "No 'get' handler defined for '{path}'"
            )))
        }
    };
    match format {
        "json" => println!("{value}"),
        "json-pretty" => println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialise")
        ),
        _ => print_text(&value),
    }
    Ok(())
}

fn check_node(layout: &Layout, node: &str) -> Result<(), Failure> {
    if node != layout.node {
        return Err(Failure::new(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        )));
    }
    Ok(())
}

/// The lowest free VMID >= 100 across CTs and VMs, or the asked one when free.
fn nextid(layout: &Layout, asked: Option<&str>) -> Result<Value, Failure> {
    let taken: std::collections::BTreeSet<u32> = layout
        .all_guests()
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    if let Some(asked) = asked {
        let mut errors = ParamErrors::default();
        match check_vmid(asked) {
            Err(e) => errors.add("vmid", e),
            Ok(id) if taken.contains(&id) => errors.add("vmid", format!("VM {id} already exists")),
            Ok(id) => return Ok(json!(id.to_string())),
        }
        errors.into_result(USAGE)?;
    }
    let id = (100u32..=999_999_999)
        .find(|id| !taken.contains(id))
        .ok_or_else(|| Failure::new("unable to get any free VMID in range [100, 999999999]"))?;
    Ok(json!(id.to_string()))
}

/// The container's status object (pve's `vmstatus` fields the stand-in can know).
pub fn vm_status(layout: &Layout, vmid: u32, conf: &Conf) -> Value {
    let pid = lxc::pid(layout, vmid);
    let mem = |key: &str, default: u64| -> u64 {
        conf.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
            << 20
    };
    let mut v = json!({
        "vmid": vmid,
        "name": conf.hostname(vmid),
        "status": if pid.is_some() { "running" } else { "stopped" },
        "type": "lxc",
        "maxmem": mem("memory", 512),
        "maxswap": mem("swap", 512),
        "cpus": conf.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
        "uptime": 0,
        "ha": { "managed": 0 },
    });
    if let Some(pid) = pid {
        v["pid"] = json!(pid);
    }
    if let Some(lock) = conf.get("lock") {
        v["lock"] = json!(lock);
    }
    if let Some(tags) = conf.get("tags") {
        v["tags"] = json!(tags);
    }
    v
}

fn print_text(value: &Value) {
    match value {
        Value::String(s) => println!("{s}"),
        Value::Object(map) => {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                println!("{k}: {v}");
            }
        }
        Value::Array(items) => {
            for item in items {
                println!("{item}");
            }
        }
        other => println!("{other}"),
    }
}
