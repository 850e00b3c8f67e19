//! `smictl get KIND [NAME]`: the resources of a kind in etcd, from the mirror read at connection.

use std::io;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::kind::Kind;
use super::objects::describe;
use crate::cli::EtcdArgs;
use crate::cli::args::usage;
use crate::cli::escape::escape;
use crate::cli::output::{Out, diag, finish};

#[derive(Debug, Args)]
pub struct GetArgs {
    /// traffictarget (tt), httproutegroup (htr), tcproute, udproute or trafficsplit (ts):
    /// singular or plural, any case.
    pub kind: Kind,
    /// One resource, by name.
    pub name: Option<String>,
    /// Only this namespace (a NAME without it is in `default`; a list has every namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// `json`: the stored objects; `name`: `namespace/name` lines. A table without it.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Name,
}

/// One stored resource: where its key says it is, and its value.
#[derive(Debug)]
struct Stored {
    key: String,
    namespace: String,
    name: String,
    value: Result<Value, String>,
}

pub fn get(args: &GetArgs, out: Out<'_>) -> ExitCode {
    let etcd = match args.etcd.require() {
        Ok(etcd) => etcd,
        Err(e) => return usage(&e),
    };
    let keys = etcd.mirror().keys();
    let kind = args.kind;
    let mut prefix = format!("{}{}/", keys.policy_prefix(), kind.name());
    let namespace = match (&args.name, &args.namespace) {
        (Some(_), None) => Some("default"),
        (_, namespace) => namespace.as_deref(),
    };
    if let Some(namespace) = namespace {
        prefix = format!("{prefix}{namespace}/");
    }
    let stored: Vec<Stored> = etcd
        .mirror()
        .entries(&prefix)
        .into_iter()
        .filter_map(|(key, entry)| {
            let relative = key.strip_prefix(&prefix)?;
            let (namespace, name) = match namespace {
                Some(namespace) => (namespace, relative),
                None => relative.split_once('/')?,
            };
            let value = serde_json::from_slice(&entry.value).map_err(|e| format!("not JSON: {e}"));
            Some(Stored {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                value,
                key,
            })
        })
        .collect();
    let Some(name) = &args.name else {
        if stored.is_empty() {
            diag!(
                "no {kind} found{}",
                namespace.map_or_else(String::new, |ns| format!(" in namespace {ns}"))
            );
        }
        let written = list(&stored, args.output, out);
        return finish(out, ExitCode::SUCCESS, written);
    };
    let Some(one) = stored.iter().find(|s| s.name == *name) else {
        diag!(
            "error: {} not found",
            describe(kind, namespace.unwrap_or("default"), &escape(name))
        );
        return ExitCode::from(1);
    };
    let written = match (args.output, &one.value) {
        (Some(Format::Json), Ok(value)) => writeln!(out, "{}", pretty(value)),
        (Some(Format::Json), Err(e)) => return usage(&format!("etcd:{}: {e}", one.key)),
        (output, _) => list(std::slice::from_ref(one), output, out),
    };
    finish(out, ExitCode::SUCCESS, written)
}

fn list(stored: &[Stored], output: Option<Format>, out: Out<'_>) -> io::Result<()> {
    match output {
        None => table(stored, out),
        Some(Format::Name) => stored
            .iter()
            .try_for_each(|s| writeln!(out, "{}/{}", escape(&s.namespace), escape(&s.name))),
        Some(Format::Json) => {
            let values: Vec<&Value> = stored
                .iter()
                .filter_map(|s| match &s.value {
                    Ok(value) => Some(value),
                    Err(e) => {
                        diag!("warning: etcd:{}: {e}; left out", escape(&s.key));
                        None
                    }
                })
                .collect();
            writeln!(out, "{}", pretty(&values))
        }
    }
}

/// `NAMESPACE NAME APIVERSION`, in columns three spaces apart, as kubectl prints.
fn table(stored: &[Stored], out: Out<'_>) -> io::Result<()> {
    if stored.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 3]> = stored
        .iter()
        .map(|s| {
            let api_version = match &s.value {
                Ok(value) => value
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
                    .to_owned(),
                Err(_) => "<not JSON>".to_owned(),
            };
            [
                escape(&s.namespace).into_owned(),
                escape(&s.name).into_owned(),
                escape(&api_version).into_owned(),
            ]
        })
        .collect();
    let header = ["NAMESPACE", "NAME", "APIVERSION"].map(str::to_owned);
    let width = |column: usize| {
        std::iter::once(&header)
            .chain(&rows)
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (ns_width, name_width) = (width(0), width(1));
    std::iter::once(&header)
        .chain(&rows)
        .try_for_each(|[ns, name, api_version]| {
            writeln!(out, "{ns:<ns_width$}   {name:<name_width$}   {api_version}")
        })
}

fn pretty<T: serde::Serialize>(value: &T) -> String {
    // Values parsed from JSON always serialize; the empty fallback is never taken.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(namespace: &str, name: &str, value: &str) -> Stored {
        Stored {
            key: format!("/smi-mesh/policy/TrafficSplit/{namespace}/{name}"),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            value: serde_json::from_str(value).map_err(|e| e.to_string()),
        }
    }

    fn printed(stored: &[Stored], output: Option<Format>) -> String {
        let mut out = Vec::new();
        list(stored, output, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_list_is_a_table_names_or_a_json_array() {
        let rows = [
            stored(
                "shop",
                "books",
                r#"{"apiVersion":"split.smi-spec.io/v1alpha4"}"#,
            ),
            stored("default", "a-longer-name", "{}"),
            stored("x", "broken", "{not json"),
        ];
        assert_eq!(
            printed(&rows, None),
            "NAMESPACE   NAME            APIVERSION\n\
             shop        books           split.smi-spec.io/v1alpha4\n\
             default     a-longer-name   <none>\n\
             x           broken          <not JSON>\n"
        );
        assert_eq!(
            printed(&rows, Some(Format::Name)),
            "shop/books\ndefault/a-longer-name\nx/broken\n"
        );
        let json: Value = serde_json::from_str(&printed(&rows, Some(Format::Json))).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"apiVersion": "split.smi-spec.io/v1alpha4"}, {}])
        );
        assert_eq!(printed(&[], Some(Format::Json)), "[]\n");
        assert_eq!(printed(&[], None), "");
    }
}
