//! Resource acceptance: every parse case P-* of CONFORMANCE.md §4 (data/parse, verbatim from
//! smi-controller-sdk) loads with no error into the expected model.

use smi_core::model::{
    Backend, HttpMatch, L4Protocol, Method, MethodSet, PolicySet, RouteKind, Rule,
};
use smi_core::{Options, ServiceAccount, Snapshot};
use smi_tests::load_data;

fn rule(kind: RouteKind, name: &str, matches: Option<&[&str]>) -> Rule {
    Rule {
        kind,
        name: name.to_owned(),
        matches: matches.map(|m| m.iter().map(|s| s.to_string()).collect()),
    }
}

fn http_match(
    name: &str,
    path: Option<&str>,
    methods: MethodSet,
    headers: &[(&str, &str)],
) -> HttpMatch {
    HttpMatch {
        name: name.to_owned(),
        path_regex: path.map(str::to_owned),
        methods,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn backends(pairs: &[(&str, u64)]) -> Vec<Backend> {
    pairs
        .iter()
        .map(|(s, w)| Backend {
            service: s.to_string(),
            weight: *w,
        })
        .collect()
}

fn check_target(p: &PolicySet, version: &str, port: Option<u16>, rules: Vec<Rule>) {
    let [t] = p.targets.as_slice() else {
        panic!("one TrafficTarget: {p:?}")
    };
    assert_eq!(
        (t.meta.name.as_str(), t.meta.namespace.as_str()),
        ("path-specific", "default")
    );
    assert_eq!(t.meta.api_version, format!("access.smi-spec.io/{version}"));
    assert_eq!(t.destination, ServiceAccount::new("default", "service-a"));
    assert_eq!(
        t.sources,
        vec![ServiceAccount::new("default", "prometheus")]
    );
    assert_eq!((t.destination_port, &t.rules), (port, &rules));
}

fn check_group(p: &PolicySet, metrics_headers: &[(&str, &str)]) {
    let [g] = p.route_groups.as_slice() else {
        panic!("one HTTPRouteGroup: {p:?}")
    };
    assert_eq!(
        (g.meta.name.as_str(), g.meta.namespace.as_str()),
        ("the-routes", "default")
    );
    let get = MethodSet::EMPTY.with(Method::Get);
    let expected = vec![
        http_match("metrics", Some("/metrics"), get, metrics_headers),
        http_match("health", Some("/ping"), MethodSet::ANY, &[]),
    ];
    assert_eq!(g.matches, expected);
}

fn check_l4(p: &PolicySet, protocol: L4Protocol, name: &str, ports: &[u16]) {
    let [r] = p.l4_routes.as_slice() else {
        panic!("one L4 route: {p:?}")
    };
    assert_eq!(
        (r.protocol, r.meta.name.as_str(), r.ports.as_slice()),
        (protocol, name, ports)
    );
}

fn check_split(
    p: &PolicySet,
    name: &str,
    root: &str,
    want: &[(&str, u64)],
    matches: &[&str],
    shares: &[f64],
) {
    let [s] = p.splits.as_slice() else {
        panic!("one TrafficSplit: {p:?}")
    };
    assert_eq!((s.meta.name.as_str(), s.service.as_str()), (name, root));
    assert_eq!(
        (&s.backends, &s.matches),
        (
            &backends(want),
            &matches.iter().map(|m| m.to_string()).collect()
        )
    );
    let snapshot = Snapshot::compile(p.clone(), Options::default());
    let service = smi_core::policy::ServiceName {
        namespace: "default",
        name: root,
    };
    let Some(split) = snapshot.route(service, None).split() else {
        panic!("{root} is not split")
    };
    for (i, share) in shares.iter().enumerate() {
        assert!(
            (split.probability(i) - share).abs() < 1e-12,
            "{name} backend {i}"
        );
    }
}

fn ab_test_group(p: &PolicySet) {
    let [g] = p.route_groups.as_slice() else {
        panic!("one HTTPRouteGroup: {p:?}")
    };
    assert_eq!(
        g.meta.api_version, "specs.smi-spec.io/v1alpha4",
        "read in the newest shape"
    );
    let firefox = http_match(
        "firefox-users",
        None,
        MethodSet::ANY,
        &[("user-agent", ".*Firefox.*")],
    );
    assert_eq!(
        (g.meta.name.as_str(), &g.matches),
        ("ab-test", &vec![firefox])
    );
}

type Check = fn(&PolicySet);

/// `(case, file, warnings expected, check)`.
const CASES: &[(&str, &str, &[&str], Check)] = &[
    ("P-TT-1", "p-tt-1.yaml", &[], |p| {
        let rules = vec![
            rule(RouteKind::Tcp, "the-routes", None),
            rule(RouteKind::Http, "the-routes", Some(&["metrics"])),
        ];
        check_target(p, "v1alpha3", None, rules)
    }),
    ("P-TT-2", "p-tt-2.yaml", &[], |p| {
        check_target(
            p,
            "v1alpha2",
            Some(8080),
            vec![rule(RouteKind::Http, "the-routes", Some(&["metrics"]))],
        )
    }),
    ("P-TT-3", "p-tt-3.yaml", &[], |p| {
        check_target(
            p,
            "v1alpha1",
            Some(8080),
            vec![rule(RouteKind::Http, "the-routes", Some(&["metrics"]))],
        )
    }),
    ("P-HRG-1", "p-hrg-1.yaml", &[], |p| check_group(p, &[])),
    ("P-HRG-2", "p-hrg-2.yaml", &[], |p| check_group(p, &[])),
    ("P-HRG-3", "p-hrg-3.yaml", &[], |p| check_group(p, &[])),
    ("P-HRG-4", "p-hrg-4.yaml", &[], |p| {
        check_group(p, &[("x-debug", "1")])
    }),
    ("P-TCP-1", "p-tcp-1.yaml", &[], |p| {
        check_l4(p, L4Protocol::Tcp, "tcp-route", &[])
    }),
    ("P-TCP-2", "p-tcp-2.yaml", &[], |p| {
        check_l4(p, L4Protocol::Tcp, "tcp-route", &[])
    }),
    ("P-TCP-3", "p-tcp-3.yaml", &[], |p| {
        check_l4(p, L4Protocol::Tcp, "tcp-route", &[])
    }),
    ("P-TCP-4", "p-tcp-4.yaml", &[], |p| {
        check_l4(p, L4Protocol::Tcp, "the-routes", &[3306, 6446])
    }),
    ("P-UDP-4", "p-udp-4.yaml", &[], |p| {
        check_l4(p, L4Protocol::Udp, "the-routes", &[989, 990])
    }),
    ("P-TS-1", "p-ts-1.yaml", &[], |p| {
        check_split(
            p,
            "trafficsplit-sample",
            "foo",
            &[("bar", 50), ("baz", 50)],
            &[],
            &[0.5, 0.5],
        )
    }),
    ("P-TS-2", "p-ts-2.yaml", &[], |p| {
        check_split(
            p,
            "trafficsplit-sample",
            "foo",
            &[("bar", 50), ("baz", 50)],
            &[],
            &[0.5, 0.5],
        )
    }),
    (
        "P-TS-3",
        "p-ts-3.yaml",
        &[
            "parse/p-ts-3.yaml:doc 2: HTTPRouteGroup default/ab-test: apiVersion missing; read as specs.smi-spec.io/v1alpha4",
        ],
        |p| {
            check_split(
                p,
                "ab-test",
                "website",
                &[("website-v1", 0), ("website-v2", 100)],
                &["ab-test"],
                &[0.0, 1.0],
            );
            ab_test_group(p);
        },
    ),
    (
        "P-TS-4",
        "p-ts-4.yaml",
        &[
            "parse/p-ts-4.yaml:doc 2: HTTPRouteGroup default/ab-test: apiVersion missing; read as specs.smi-spec.io/v1alpha4",
        ],
        |p| {
            check_split(
                p,
                "ab-test",
                "website",
                &[("website-v1", 0), ("website-v2", 100)],
                &["ab-test"],
                &[0.0, 1.0],
            );
            ab_test_group(p);
        },
    ),
];

#[test]
fn every_parse_case_loads_without_errors_into_the_expected_model() {
    for (case, file, warnings, check) in CASES {
        let loaded = load_data(&format!("parse/{file}"));
        let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert!(loaded.is_valid(), "{case}: {shown:?}");
        assert_eq!(&shown, warnings, "{case}: diagnostics");
        assert_eq!(loaded.skipped, 0, "{case}");
        check(&loaded.policy);
    }
}

#[test]
fn the_table_covers_every_parse_case_file() {
    let dir = format!("{}/parse", smi_tests::DATA_DIR);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("data/parse")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut covered: Vec<String> = CASES.iter().map(|(_, f, ..)| f.to_string()).collect();
    covered.sort();
    assert_eq!(files, covered);
}
