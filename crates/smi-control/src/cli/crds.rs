//! `smictl crds`: the SMI CustomResourceDefinitions that `smi-control serve --kubernetes` reads,
//! every version of every kind, as one YAML stream: `smictl crds | kubectl apply -f -`. They are
//! the files of `deploy/kubernetes/crds/` (validated against Kubernetes' own schemas by
//! `tests/tests/deploy_manifests.rs`), compiled in so that the binary and its CRDs agree.

use std::io;
use std::process::ExitCode;

use clap::Args;

use super::output::{Out, finish};

/// The CRD files, one per API group, in the order they are printed.
pub const CRD_FILES: [(&str, &str); 3] = [
    (
        "access.smi-spec.io.yaml",
        include_str!("../../../../deploy/kubernetes/crds/access.smi-spec.io.yaml"),
    ),
    (
        "specs.smi-spec.io.yaml",
        include_str!("../../../../deploy/kubernetes/crds/specs.smi-spec.io.yaml"),
    ),
    (
        "split.smi-spec.io.yaml",
        include_str!("../../../../deploy/kubernetes/crds/split.smi-spec.io.yaml"),
    ),
];

#[derive(Debug, Args)]
pub struct CrdsArgs {}

/// Prints every CRD; exit 0.
pub fn run(_args: &CrdsArgs, out: Out<'_>) -> ExitCode {
    let written = write_all(out);
    finish(out, ExitCode::SUCCESS, written)
}

fn write_all(out: Out<'_>) -> io::Result<()> {
    for (i, (_, text)) in CRD_FILES.iter().enumerate() {
        if i > 0 {
            out.write_all(b"---\n")?;
        }
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    const GROUPS: [&str; 3] = [
        "access.smi-spec.io",
        "specs.smi-spec.io",
        "split.smi-spec.io",
    ];

    /// What `smictl crds` prints, parsed: every document.
    fn printed() -> Vec<Value> {
        let mut out = Vec::new();
        assert_eq!(run(&CrdsArgs {}, &mut out), ExitCode::SUCCESS);
        let text = String::from_utf8(out).unwrap();
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|document| Value::deserialize(document).unwrap())
            .collect()
    }

    /// (group, kind) to the names of the versions the CRD serves.
    fn served() -> BTreeMap<(String, String), Vec<String>> {
        let mut served = BTreeMap::new();
        for crd in printed() {
            let spec = &crd["spec"];
            let key = (
                spec["group"].as_str().unwrap().to_owned(),
                spec["names"]["kind"].as_str().unwrap().to_owned(),
            );
            let versions = spec["versions"].as_array().unwrap();
            let names = versions
                .iter()
                .filter(|v| v["served"] == true)
                .map(|v| v["name"].as_str().unwrap().to_owned());
            served.insert(key, names.collect());
        }
        served
    }

    #[test]
    fn prints_every_smi_kind_and_version_with_one_storage_version_the_newest() {
        let crds = printed();
        let mut found = BTreeMap::new();
        for crd in &crds {
            assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
            assert_eq!(crd["kind"], "CustomResourceDefinition");
            let spec = &crd["spec"];
            let kind = spec["names"]["kind"].as_str().unwrap();
            let versions = spec["versions"].as_array().unwrap();
            let names: Vec<&str> = versions
                .iter()
                .map(|v| v["name"].as_str().unwrap())
                .collect();
            let storage: Vec<&str> = versions
                .iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].as_str().unwrap())
                .collect();
            assert_eq!(storage.len(), 1, "{kind}: storage versions {storage:?}");
            assert_eq!(Some(&storage[0]), names.iter().max(), "{kind}");
            assert!(versions.iter().all(|v| v["served"] == true), "{kind}");
            assert_eq!(spec["scope"], "Namespaced", "{kind}");
            assert_eq!(spec["conversion"]["strategy"], "None", "{kind}");
            let plural = format!("{}s", kind.to_ascii_lowercase());
            assert_eq!(spec["names"]["plural"], plural.as_str(), "{kind}");
            assert_eq!(
                crd["metadata"]["name"],
                format!("{plural}.{}", spec["group"].as_str().unwrap())
            );
            let short = spec["names"]["shortNames"][0].as_str().unwrap();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            found.insert(kind.to_owned(), (sorted.join(" "), short.to_owned()));
        }
        let all = "v1alpha1 v1alpha2 v1alpha3 v1alpha4";
        let expected = BTreeMap::from([
            ("TrafficTarget", ("v1alpha1 v1alpha2 v1alpha3", "tt")),
            ("HTTPRouteGroup", (all, "htr")),
            ("TCPRoute", (all, "tr")),
            ("UDPRoute", ("v1alpha4", "ur")),
            ("TrafficSplit", (all, "ts")),
        ])
        .into_iter()
        .map(|(k, (v, s))| (k.to_owned(), (v.to_owned(), s.to_owned())))
        .collect::<BTreeMap<_, _>>();
        assert_eq!(found, expected);
        assert_eq!(crds.len(), 5);
    }

    /// The loader's list of versions is private to smi-core; `smi_objects` keeps exactly the
    /// documents it would read as SMI, so each (group, kind, version) is asked of it. The kinds
    /// asked are the CRDs' and the access v1alpha4 draft's IdentityBinding; the versions, every
    /// SMI one and the next few.
    #[test]
    fn every_kind_and_version_the_loader_reads_is_served_by_a_crd_and_no_other() {
        let served: BTreeSet<(String, String, String)> = served()
            .into_iter()
            .flat_map(|((group, kind), versions)| {
                versions
                    .into_iter()
                    .map(move |v| (group.clone(), kind.clone(), v))
            })
            .collect();
        let mut kinds: BTreeSet<String> = served.iter().map(|(_, kind, _)| kind.clone()).collect();
        kinds.insert("IdentityBinding".to_owned());
        let versions = [
            "v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4", "v1alpha5", "v1beta1", "v1",
        ];
        let mut loaded = BTreeSet::new();
        for group in GROUPS {
            for kind in &kinds {
                for version in versions {
                    let doc = format!(
                        "apiVersion: {group}/{version}\nkind: {kind}\nmetadata: {{name: x, namespace: y}}\n"
                    );
                    if !smi_core::load::smi_objects(&doc, smi_core::Format::Yaml).is_empty() {
                        loaded.insert((group.to_owned(), kind.clone(), version.to_owned()));
                    }
                }
            }
        }
        assert_eq!(loaded.len(), 16, "{loaded:#?}");
        assert_eq!(loaded, served);
    }
}
