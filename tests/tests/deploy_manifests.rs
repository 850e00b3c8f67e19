//! The Kubernetes manifests in `deploy/kubernetes`, checked offline as an API server would take
//! them, by `deploy_manifests/validate.py` beside this file: built-in kinds against Kubernetes
//! 1.37's OpenAPI schemas (the `kubernetes-validate` package, strict: unknown fields are errors),
//! the CRDs also for what the API server checks beyond that (structural schemas, one storage
//! version), and SMI objects against the openAPIV3Schema of their CRD version (`jsonschema`).
//! `scripts/test` installs both packages into `target/test-venv`; `SMI_PYTHON` names the
//! interpreter that has them (default `python3`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// One document's verdict, as validate.py prints it.
#[derive(Debug, Deserialize)]
struct Verdict {
    file: String,
    document: usize,
    kind: Option<String>,
    name: Option<String>,
    status: String,
    errors: Vec<String>,
    pruned: Vec<String>,
}

impl Verdict {
    /// `file#document`, with the file named from its last two path components.
    fn at(&self) -> String {
        let path = Path::new(&self.file);
        let short: Vec<_> = path.iter().rev().take(2).collect();
        let short: PathBuf = short.into_iter().rev().collect();
        format!("{}#{}", short.display(), self.document)
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every `.yaml` file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Runs validate.py with the repository's CRDs over `files`; every document's verdict.
fn validate(options: &[&str], files: &[PathBuf]) -> Vec<Verdict> {
    assert!(!files.is_empty(), "nothing to validate");
    let interpreter = std::env::var("SMI_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = repo().join("tests/tests/deploy_manifests/validate.py");
    let crds = repo().join("deploy/kubernetes/crds");
    let output = Command::new(&interpreter)
        .arg(&script)
        .arg("--crds")
        .arg(&crds)
        .args(["--kubernetes-version", "1.37.0"])
        .args(options)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!("{interpreter}: {e} (scripts/test makes target/test-venv and sets SMI_PYTHON)")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "validate.py did not run ({}): {stderr}\n(it needs kubernetes-validate and jsonschema: \
         scripts/test installs them into target/test-venv and sets SMI_PYTHON to its python3)",
        output.status
    );
    let verdicts: Vec<Verdict> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let invalid = verdicts.iter().any(|v| v.status == "invalid");
    assert_eq!(
        output.status.code() == Some(1),
        invalid,
        "the exit status says something else than the verdicts: {verdicts:#?}\n{stderr}"
    );
    verdicts
}

/// Every verdict that is not a plain "ok": `file#document` to (status, errors, pruned).
fn exceptions(verdicts: &[Verdict]) -> BTreeMap<String, (String, String, Vec<String>)> {
    verdicts
        .iter()
        .filter(|v| v.status != "ok" || !v.pruned.is_empty())
        .map(|v| {
            (
                v.at(),
                (v.status.clone(), v.errors.join("; "), v.pruned.clone()),
            )
        })
        .collect()
}

#[test]
fn every_manifest_under_deploy_kubernetes_is_a_valid_kubernetes_1_37_object() {
    let verdicts = validate(&[], &yaml_files(&repo().join("deploy/kubernetes")));
    assert!(exceptions(&verdicts).is_empty(), "{verdicts:#?}");
    let count = |kind: &str| {
        verdicts
            .iter()
            .filter(|v| v.kind.as_deref() == Some(kind))
            .count()
    };
    // What was validated, so that a manifest that stopped being read would show.
    assert_eq!(count("CustomResourceDefinition"), 5);
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "APIService",
        "HTTPRouteGroup",
        "TrafficTarget",
        "TrafficSplit",
    ] {
        assert!(count(kind) > 0, "no {kind} validated: {verdicts:#?}");
    }
    let control = verdicts.iter().find(|v| {
        v.kind.as_deref() == Some("Deployment") && v.name.as_deref() == Some("smi-control")
    });
    assert!(control.is_some(), "{verdicts:#?}");
}

#[test]
fn the_bookstore_demo_policy_matches_its_crd_versions_with_no_unknown_field() {
    let verdicts = validate(&[], &yaml_files(&repo().join("examples/bookstore/policy")));
    assert_eq!(verdicts.len(), 5, "{verdicts:#?}");
    assert!(exceptions(&verdicts).is_empty(), "{verdicts:#?}");
}

#[test]
fn the_parse_fixtures_are_accepted_except_a_v1alpha2_destination_port() {
    // The P-* resource-acceptance cases, as a client that does not ask for strict field
    // validation sends them (kuttl, client-go): unknown fields are pruned.
    let verdicts = validate(
        &["--unknown-fields", "prune"],
        &yaml_files(&repo().join("tests/data/parse")),
    );
    assert_eq!(verdicts.len(), 18, "{verdicts:#?}");
    let found = exceptions(&verdicts);
    let no_api_version = "no apiVersion or kind: not something kubectl can apply".to_owned();
    let expected = BTreeMap::from([
        // The HTTPRouteGroup the smi-controller-sdk scenario creates beside the split has no
        // apiVersion; kubectl could not apply it as written.
        (
            "parse/p-ts-3.yaml#2".to_owned(),
            ("skipped".to_owned(), no_api_version.clone(), vec![]),
        ),
        (
            "parse/p-ts-4.yaml#2".to_owned(),
            ("skipped".to_owned(), no_api_version, vec![]),
        ),
        // Refused on purpose: read as v1alpha3 the port would be dropped, admitting every port.
        (
            "parse/p-tt-2.yaml#1".to_owned(),
            (
                "invalid".to_owned(),
                "spec.destination: destination.port is not enforced: smi-control reads \
                 TrafficTargets as v1alpha3, which has no port, so the target would admit every \
                 port; use a TCPRoute rule with matches.ports"
                    .to_owned(),
                vec![],
            ),
        ),
    ]);
    assert_eq!(found, expected);
}

#[test]
fn the_conformance_installs_are_accepted_except_top_level_matches_under_v1alpha4() {
    let files: Vec<PathBuf> = yaml_files(&repo().join("tests/data/conformance"))
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with("-install.yaml"))
        .collect();
    let verdicts = validate(&["--unknown-fields", "prune", "--only-smi"], &files);
    let smi: Vec<&Verdict> = verdicts.iter().filter(|v| v.status != "skipped").collect();
    assert_eq!(smi.len(), 10, "{verdicts:#?}");
    let found = exceptions(&verdicts);
    let found: BTreeMap<_, _> = found
        .into_iter()
        .filter(|(_, (status, _, _))| status != "skipped")
        .collect();
    let port = vec!["spec.destination.port".to_owned()];
    let expected = BTreeMap::from([
        // The suite writes v1alpha2's top-level `matches` under v1alpha4: pruned, and what is
        // left has no spec, which v1alpha4 requires. (The loader reads that shape from files.)
        (
            "traffic-spec/03-install.yaml#1".to_owned(),
            (
                "invalid".to_owned(),
                "(root): 'spec' is a required property".to_owned(),
                vec!["matches".to_owned()],
            ),
        ),
        // Its stray `port: "9091"` under v1alpha3 is pruned, as the loader ignores it.
        (
            "traffic-spec/03-install.yaml#2".to_owned(),
            ("ok".to_owned(), String::new(), port.clone()),
        ),
        (
            "traffic-spec/05-install.yaml#2".to_owned(),
            ("ok".to_owned(), String::new(), port),
        ),
    ]);
    assert_eq!(found, expected);
}

/// Writes each `(name, yaml)` into a temporary directory; the directory and the paths.
fn temporary_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = files
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

/// Each file's one verdict: file name to (status, errors).
fn by_file(verdicts: &[Verdict]) -> BTreeMap<String, (String, String)> {
    verdicts
        .iter()
        .map(|v| {
            let name = Path::new(&v.file).file_name().unwrap().to_string_lossy();
            (name.into_owned(), (v.status.clone(), v.errors.join("; ")))
        })
        .collect()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: web:1}
";

#[test]
fn built_in_objects_with_a_misspelled_missing_or_mistyped_field_are_refused() {
    let misspelled = DEPLOYMENT.replace("replicas: 2", "replica: 2");
    let no_selector = DEPLOYMENT.replace("  selector: {matchLabels: {app: web}}\n", "");
    let mistyped = DEPLOYMENT.replace("replicas: 2", "replicas: two");
    let unknown_kind = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";
    let (_dir, files) = temporary_files(&[
        ("valid.yaml", DEPLOYMENT),
        ("misspelled.yaml", &misspelled),
        ("no-selector.yaml", &no_selector),
        ("mistyped.yaml", &mistyped),
        ("unknown-kind.yaml", unknown_kind),
    ]);
    let found = by_file(&validate(&[], &files));
    assert_eq!(found["valid.yaml"].0, "ok", "{found:#?}");
    for (file, says) in [
        ("misspelled.yaml", "'replica' was unexpected"),
        ("no-selector.yaml", "'selector' is a required property"),
        ("mistyped.yaml", "spec.replicas: 'two' is not of type"),
        ("unknown-kind.yaml", "Couldn't find schema for kind Widget"),
    ] {
        let (status, errors) = &found[file];
        assert_eq!(status, "invalid", "{file}: {errors}");
        assert!(errors.contains(says), "{file}: {errors}");
    }
}

const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: canary, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 90}
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object}
";

#[test]
fn smi_objects_and_crds_that_an_api_server_would_refuse_are_refused() {
    let quantity_v1alpha1 = SPLIT
        .replace("v1alpha4", "v1alpha1")
        .replace("weight: 90", "weight: 900m");
    let cases: Vec<(&str, String, &str)> = vec![
        ("split-ok.yaml", SPLIT.to_owned(), ""),
        (
            "split-quantity-v1alpha1.yaml",
            quantity_v1alpha1.clone(),
            "",
        ),
        (
            "split-misspelled.yaml",
            SPLIT.replace("weight: 90", "weigth: 90"),
            "spec.backends[0].weigth: unknown field",
        ),
        (
            "split-quantity-v1alpha4.yaml",
            SPLIT.replace("weight: 90", "weight: 900m"),
            "'900m' is not of type 'integer'",
        ),
        (
            "split-not-a-quantity.yaml",
            quantity_v1alpha1.replace("900m", "ninety"),
            "'ninety' does not match",
        ),
        (
            "split-negative.yaml",
            SPLIT.replace("weight: 90", "weight: -1"),
            "-1 is less than the minimum of 0",
        ),
        (
            "split-v1alpha5.yaml",
            SPLIT.replace("v1alpha4", "v1alpha5"),
            "no CRD serves TrafficSplit in split.smi-spec.io/v1alpha5",
        ),
        (
            "split-metadata.yaml",
            SPLIT.replace("namespace: shop", "namspace: shop"),
            "'namspace' was unexpected",
        ),
        (
            "target-no-sources.yaml",
            "apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web}
  rules: [{kind: HTTPRouteGroup, name: routes}]
"
            .to_owned(),
            "'sources' is a required property",
        ),
        (
            "routes-lowercase-method.yaml",
            "apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: shop}
spec:
  matches: [{name: all, methods: [get]}]
"
            .to_owned(),
            "'get' is not one of",
        ),
        (
            "tcp-port.yaml",
            "apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  matches: {ports: [70000]}
"
            .to_owned(),
            "70000 is greater than the maximum of 65535",
        ),
        ("crd-ok.yaml", CRD.to_owned(), ""),
        (
            "crd-untyped.yaml",
            CRD.replace("size: {type: integer}", "size: {minimum: 1}"),
            "properties.size: no type",
        ),
        (
            "crd-two-storage.yaml",
            CRD.replace("storage: false", "storage: true"),
            "2 storage versions, must be exactly one",
        ),
        (
            "crd-old-storage.yaml",
            CRD.replace("storage: true", "storage: was")
                .replace("storage: false", "storage: true")
                .replace("storage: was", "storage: false"),
            "storage version v1beta1 is not the newest, v1",
        ),
        (
            "crd-not-served.yaml",
            CRD.replace(
                "served: true\n    storage: false",
                "served: false\n    storage: false",
            ),
            "(v1beta1): not served",
        ),
        (
            "crd-name.yaml",
            CRD.replace("name: widgets.example.com", "name: widget.example.com"),
            "metadata.name: must be widgets.example.com",
        ),
    ];
    let texts: Vec<(&str, &str)> = cases.iter().map(|(f, t, _)| (*f, t.as_str())).collect();
    let (_dir, files) = temporary_files(&texts);
    let found = by_file(&validate(&[], &files));
    for (file, _, says) in &cases {
        let (status, errors) = &found[*file];
        if says.is_empty() {
            assert_eq!(status, "ok", "{file}: {errors}");
        } else {
            assert_eq!(status, "invalid", "{file}: {errors}");
            assert!(
                errors.contains(says),
                "{file}: expected {says:?} in {errors}"
            );
        }
    }
}
