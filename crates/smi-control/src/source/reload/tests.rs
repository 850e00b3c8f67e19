use std::fs;
use std::path::Path;

use smi_core::load::limits::MAX_SOURCE_BYTES;
use tempfile::TempDir;

use super::*;
use crate::status::PolicyStatus;

const STORE: &str = include_str!("../../../../../examples/bookstore/policy/bookstore-access.yaml");
const WAREHOUSE: &str =
    include_str!("../../../../../examples/bookstore/policy/bookwarehouse-access.yaml");
const SPLIT: &str = include_str!("../../../../../examples/bookstore/policy/bookstore-split.yaml");
/// A valid TrafficSplit, then an invalid one: the file as a whole does not load.
const HALF_BROKEN: &str = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: good}\nspec: {service: x, backends: [{service: y, weight: 1}]}\n---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: bad}\nspec: {service: x, backends: [{service: y, weight: -1}]}\n";

struct Fixture {
    dir: TempDir,
    hub: Arc<Hub>,
    status: Arc<Status>,
    reloader: PolicyReloader,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::new(false);
    let status = Status::new();
    let reloader = PolicyReloader::new(
        Arc::new(crate::files::PolicyDir::new(dir.path())),
        hub.clone(),
        status.clone(),
        Options::default(),
    );
    Fixture {
        dir,
        hub,
        status,
        reloader,
    }
}

impl Fixture {
    fn write(&self, name: &str, text: &str) {
        fs::write(self.dir.path().join(name), text).unwrap();
    }

    fn remove(&self, name: &str) {
        fs::remove_file(self.dir.path().join(name)).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `Kind namespace/name` of every published resource, sorted.
    fn serving(&self) -> Vec<String> {
        let policy = self.hub.latest().policy.clone();
        let mut all: Vec<String> = policy
            .targets
            .iter()
            .map(|t| format!("TrafficTarget {}/{}", t.meta.namespace, t.meta.name))
            .chain(
                policy
                    .route_groups
                    .iter()
                    .map(|g| format!("HTTPRouteGroup {}/{}", g.meta.namespace, g.meta.name)),
            )
            .chain(
                policy
                    .splits
                    .iter()
                    .map(|s| format!("TrafficSplit {}/{}", s.meta.namespace, s.meta.name)),
            )
            .collect();
        all.sort();
        all
    }

    fn policy_status(&self) -> PolicyStatus {
        self.status.policy()
    }

    fn failing(&self) -> Vec<(String, Serving)> {
        self.policy_status()
            .failing_files
            .into_iter()
            .map(|f| (f.file, f.serving))
            .collect()
    }

    fn metrics(&self) -> String {
        self.status.prometheus(0, 0)
    }
}

const STORE_ROUTES: &str = "HTTPRouteGroup bookstore/bookstore-service-routes";
const STORE_TARGET: &str = "TrafficTarget bookstore/bookbuyer-access-bookstore";
const WAREHOUSE_ROUTES: &str = "HTTPRouteGroup bookwarehouse/bookwarehouse-service-routes";
const WAREHOUSE_TARGET: &str = "TrafficTarget bookwarehouse/bookstore-access-bookwarehouse";
const STORE_SPLIT: &str = "TrafficSplit bookstore/bookstore-split";

/// The bookstore's routes without the TrafficTarget that lets bookbuyer use them.
fn store_revoked() -> &'static str {
    STORE.split("\n---\n").next().unwrap()
}

/// The warehouse policy with a YAML syntax error.
fn warehouse_broken() -> String {
    WAREHOUSE.replace("methods: [POST]", "methods: [POST")
}

#[test]
fn a_revocation_applies_while_another_file_is_broken_and_serves_its_last_good_resources() {
    let f = fixture();
    f.write("a.yaml", STORE);
    f.write("b.yaml", WAREHOUSE);
    assert!(f.reloader.reload());
    assert_eq!(
        f.serving(),
        [
            STORE_ROUTES,
            WAREHOUSE_ROUTES,
            STORE_TARGET,
            WAREHOUSE_TARGET
        ]
    );
    let before = f.hub.latest().version;

    f.write("a.yaml", store_revoked());
    f.write("b.yaml", &warehouse_broken());
    assert!(f.reloader.reload());
    assert!(f.hub.latest().version > before);
    assert_eq!(
        f.serving(),
        [STORE_ROUTES, WAREHOUSE_ROUTES, WAREHOUSE_TARGET]
    );
    let status = f.policy_status();
    assert_eq!(f.failing(), [(f.path("b.yaml"), Serving::LastGood)]);
    let errors = &status.failing_files[0].errors;
    assert!(
        errors[0].starts_with(&format!("{}:doc 1: malformed YAML", f.path("b.yaml"))),
        "{errors:?}"
    );
    assert_eq!(&status.errors, errors);
    assert_eq!(status.resources, 3);
    let metrics = f.metrics();
    assert!(
        metrics.contains("\nsmi_control_policy_files_failing 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nsmi_control_policy_load_failures_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nsmi_control_policy_loads_total 2\n"),
        "{metrics}"
    );
}

#[test]
fn a_new_broken_file_contributes_nothing_and_is_reported() {
    let f = fixture();
    f.write("a.yaml", STORE);
    assert!(f.reloader.reload());
    let version = f.hub.latest().version;

    f.write("c.yaml", HALF_BROKEN);
    // Nothing changed in what serves, so nothing is republished.
    assert!(!f.reloader.reload());
    assert_eq!(f.hub.latest().version, version);
    assert_eq!(f.serving(), [STORE_ROUTES, STORE_TARGET]);
    assert_eq!(f.failing(), [(f.path("c.yaml"), Serving::Nothing)]);
    let status = f.policy_status();
    assert_eq!(status.version, version);
    assert_eq!(
        status.errors,
        [format!(
            "{}:doc 2: TrafficSplit default/bad: spec.backends[0].weight: -1 is negative; weights must be >= 0",
            f.path("c.yaml")
        )]
    );
    assert!(
        f.metrics()
            .contains("\nsmi_control_policy_files_failing 1\n")
    );
}

#[test]
fn fixing_a_broken_file_applies_it_and_clears_the_report() {
    let f = fixture();
    f.write("a.yaml", STORE);
    f.write("b.yaml", &warehouse_broken());
    f.write("c.yaml", HALF_BROKEN);
    f.reloader.reload();
    assert_eq!(f.failing().len(), 2);
    assert_eq!(f.policy_status().last_good_unix, 0);

    f.write("b.yaml", WAREHOUSE);
    f.write("c.yaml", SPLIT);
    assert!(f.reloader.reload());
    assert_eq!(
        f.serving(),
        [
            STORE_ROUTES,
            WAREHOUSE_ROUTES,
            STORE_SPLIT,
            STORE_TARGET,
            WAREHOUSE_TARGET,
        ]
    );
    let status = f.policy_status();
    assert!(status.failing_files.is_empty(), "{status:?}");
    assert!(status.errors.is_empty(), "{status:?}");
    assert!(status.last_good_unix > 0);
    assert!(
        f.metrics()
            .contains("\nsmi_control_policy_files_failing 0\n")
    );
}

#[test]
fn deleting_a_broken_file_clears_its_report_and_forgets_its_last_good_resources() {
    let f = fixture();
    f.write("a.yaml", STORE);
    f.write("b.yaml", WAREHOUSE);
    f.reloader.reload();
    f.write("b.yaml", &warehouse_broken());
    f.reloader.reload();
    assert_eq!(f.failing(), [(f.path("b.yaml"), Serving::LastGood)]);

    f.remove("b.yaml");
    assert!(f.reloader.reload());
    assert_eq!(f.serving(), [STORE_ROUTES, STORE_TARGET]);
    assert!(f.failing().is_empty());
    assert!(f.policy_status().errors.is_empty());

    // Back again, still broken: there is no last good to serve any more.
    f.write("b.yaml", &warehouse_broken());
    assert!(!f.reloader.reload());
    assert_eq!(f.serving(), [STORE_ROUTES, STORE_TARGET]);
    assert_eq!(f.failing(), [(f.path("b.yaml"), Serving::Nothing)]);
}

#[test]
fn oversized_and_too_deep_files_are_refused_naming_the_limit_without_blocking_others() {
    let f = fixture();
    f.write("a.yaml", STORE);
    // Valid YAML (a comment), so only the size limit refuses it.
    f.write("big.yaml", &"#".repeat(MAX_SOURCE_BYTES + 1));
    f.write(
        "deep.json",
        &format!("{}{}", "[".repeat(100), "]".repeat(100)),
    );
    assert!(f.reloader.reload());
    assert_eq!(f.serving(), [STORE_ROUTES, STORE_TARGET]);
    assert_eq!(
        f.failing(),
        [
            (f.path("big.yaml"), Serving::Nothing),
            (f.path("deep.json"), Serving::Nothing)
        ]
    );
    assert_eq!(
        f.policy_status().errors,
        [
            format!(
                "{}: 4194305 bytes, over the limit of 4194304 bytes (4 MiB) for one policy file; skipped",
                f.path("big.yaml")
            ),
            format!(
                "{}:doc 1: line 1: nested 100 levels deep, over the limit of 64; file not parsed",
                f.path("deep.json")
            ),
        ]
    );
}

#[test]
fn an_unchanged_directory_is_not_republished() {
    let f = fixture();
    f.write("a.yaml", STORE);
    assert!(f.reloader.reload());
    let version = f.hub.latest().version;
    assert!(!f.reloader.reload());
    // Rewriting a file with the same resources changes nothing either.
    f.write("b.yaml", "# nothing here\n");
    assert!(!f.reloader.reload());
    assert_eq!(f.hub.latest().version, version);
    assert_eq!(f.policy_status().version, version);
}

#[test]
fn an_unreadable_directory_keeps_the_published_policy_and_is_reported() {
    let f = fixture();
    f.write("a.yaml", STORE);
    f.reloader.reload();
    let version = f.hub.latest().version;
    let gone = f.dir.path().to_owned();
    fs::remove_dir_all(&gone).unwrap();

    assert!(!f.reloader.reload());
    assert_eq!(f.hub.latest().version, version);
    assert_eq!(f.serving(), [STORE_ROUTES, STORE_TARGET]);
    let failing = f.failing();
    assert_eq!(failing, [(gone.display().to_string(), Serving::LastGood)]);
    assert!(f.policy_status().errors[0].contains("cannot read"));
    assert!(!Path::new(&gone).exists());
}

#[test]
fn a_dangling_link_that_is_not_policy_does_not_stop_the_directory() {
    let f = fixture();
    f.write("a.yaml", STORE);
    std::os::unix::fs::symlink(f.dir.path().join("nowhere"), f.dir.path().join("notes.txt"))
        .unwrap();
    assert!(f.reloader.reload());
    assert_eq!(f.serving(), [STORE_ROUTES, STORE_TARGET]);
    assert!(f.failing().is_empty());
}
