//! Every manifest of the conformance suite (data/conformance, CONFORMANCE.md §4's last paragraph)
//! loads without errors, quirks included, into the expected number of objects; fixtures and kuttl
//! steps are skipped, not errors.

use smi_tests::load_data;

/// `(file, targets, route groups, L4 routes, splits, skipped, warnings)` for every manifest.
const MANIFESTS: &[(&str, [usize; 6])] = &[
    ("traffic-access/01-assert.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-access/02-assert.yaml", [0, 0, 0, 0, 9, 0]),
    ("traffic-access/02-install.yaml", [0, 0, 0, 0, 9, 0]),
    ("traffic-access/03-trafficDefault.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-access/04-assert.yaml", [1, 0, 1, 0, 0, 0]),
    ("traffic-access/04-install.yaml", [1, 0, 1, 0, 0, 0]),
    ("traffic-access/05-trafficAllowed.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-access/06-errors.yaml", [1, 0, 1, 0, 0, 0]),
    ("traffic-access/06-install.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-access/07-trafficBlocked.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-spec/01-assert.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-spec/02-assert.yaml", [0, 0, 0, 0, 9, 0]),
    ("traffic-spec/02-install.yaml", [0, 0, 0, 0, 9, 0]),
    ("traffic-spec/03-assert.yaml", [1, 1, 0, 0, 0, 1]),
    ("traffic-spec/03-install.yaml", [1, 1, 0, 0, 0, 1]),
    ("traffic-spec/04-trafficPath.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-spec/05-assert.yaml", [1, 1, 0, 0, 0, 1]),
    ("traffic-spec/05-install.yaml", [1, 1, 0, 0, 0, 1]),
    ("traffic-spec/06-trafficMethod.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-split/01-assert.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-split/02-assert.yaml", [0, 0, 0, 0, 7, 0]),
    ("traffic-split/02-install.yaml", [0, 0, 0, 0, 7, 0]),
    ("traffic-split/03-trafficDefault.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-split/04-assert.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/04-install.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/05-trafficOnlyB.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-split/06-assert.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/06-install.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/07-trafficOnlyC.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-split/08-assert.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/08-install.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/09-trafficBGrtC.yaml", [0, 0, 0, 0, 1, 0]),
    ("traffic-split/10-assert.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/10-install.yaml", [0, 0, 0, 1, 0, 0]),
    ("traffic-split/11-trafficCGrtB.yaml", [0, 0, 0, 0, 1, 0]),
];

#[test]
fn every_conformance_manifest_loads_without_errors() {
    for (file, expected) in MANIFESTS {
        let loaded = load_data(&format!("conformance/{file}"));
        assert!(loaded.is_valid(), "{file}:\n{}", smi_tests::show(&loaded));
        let p = &loaded.policy;
        let got = [
            p.targets.len(),
            p.route_groups.len(),
            p.l4_routes.len(),
            p.splits.len(),
            loaded.skipped,
            loaded.warnings().count(),
        ];
        assert_eq!(
            &got, expected,
            "{file}: [targets, groups, l4, splits, skipped, warnings]"
        );
    }
}

#[test]
fn the_manifest_table_covers_every_conformance_file() {
    let mut files = Vec::new();
    for suite in ["traffic-access", "traffic-spec", "traffic-split"] {
        let dir = format!("{}/conformance/{suite}", smi_tests::DATA_DIR);
        for entry in std::fs::read_dir(&dir).expect("suite directory") {
            files.push(format!(
                "{suite}/{}",
                entry.expect("entry").file_name().to_string_lossy()
            ));
        }
    }
    files.sort();
    let mut covered: Vec<String> = MANIFESTS.iter().map(|(f, _)| f.to_string()).collect();
    covered.sort();
    assert_eq!(files, covered);
}
