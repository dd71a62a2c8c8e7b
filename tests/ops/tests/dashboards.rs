//! deploy/grafana: every metric a dashboard queries is one our binaries expose, and the
//! dashboards are importable Grafana JSON.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::collections::BTreeSet;

use advancia_ops_tests::{
    dashboard_queries, dashboards, exposed_metrics, grouping_labels, metric_names, repo_root,
    selectors,
};

#[test]
fn every_dashboard_metric_is_exposed_by_a_binary() {
    let root = repo_root();
    let exposed = exposed_metrics(&root).unwrap();
    // The hand-written expositions of the indexer and the relayer are always in the tree.
    for name in [
        "advancia_indexer_head_lag_slots",
        "advancia_bridge_backlog",
        "advancia_bridge_delivery_latency_seconds",
    ] {
        assert!(
            exposed.in_code.contains(name),
            "{name} not found in the code"
        );
    }
    let mut used = BTreeSet::new();
    let mut missing = Vec::new();
    for (path, dashboard) in dashboards(&root.join("deploy/grafana")).unwrap() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for (panel, expr) in dashboard_queries(&dashboard) {
            for name in metric_names(&expr) {
                if !exposed.exposes(&name) {
                    missing.push(format!("{file} / {panel}: {name}"));
                }
                used.insert(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "dashboards query metrics no binary exposes (contract: {}):\n{}",
        exposed
            .contract
            .as_ref()
            .map_or("offchain/telemetry/METRICS.md is missing".into(), |p| p
                .display()
                .to_string()),
        missing.join("\n")
    );
    // Golden signals, business metrics, indexer lag and relayer backlog are all covered.
    for name in [
        "advancia_http_requests_total",
        "advancia_http_request_duration_seconds_bucket",
        "advancia_payment_volume_base_units",
        "advancia_payment_success_ratio",
        "advancia_indexer_head_lag_slots",
        "advancia_bridge_backlog",
    ] {
        assert!(used.contains(name), "no dashboard shows {name}");
    }
}

/// A panel filtering or grouping by a label its metric does not have shows nothing, silently.
#[test]
fn every_dashboard_label_is_one_its_metric_has() {
    let root = repo_root();
    let exposed = exposed_metrics(&root).unwrap();
    // The expositions in the code give their series' labels.
    assert!(exposed.has_label("advancia_bridge_backlog", "destination"));
    assert!(exposed.has_label("advancia_indexer_events_total", "kind"));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (path, dashboard) in dashboards(&root.join("deploy/grafana")).unwrap() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for (panel, expr) in dashboard_queries(&dashboard) {
            let names = metric_names(&expr);
            if !names.iter().all(|n| exposed.exposes(n)) {
                continue; // reported by every_dashboard_metric_is_exposed_by_a_binary
            }
            for (metric, labels) in selectors(&expr) {
                for label in labels {
                    checked += 1;
                    if !exposed.has_label(&metric, &label) {
                        wrong.push(format!("{file} / {panel}: {metric} has no label {label}"));
                    }
                }
            }
            for label in grouping_labels(&expr) {
                checked += 1;
                if !names.iter().any(|n| exposed.has_label(n, &label)) {
                    wrong.push(format!(
                        "{file} / {panel}: no metric of `{expr}` has label {label}"
                    ));
                }
            }
            // label_values(metric, label) in template variables.
            if let Some(args) = expr.strip_prefix("label_values(") {
                let label = args
                    .trim_end_matches(')')
                    .rsplit(',')
                    .next()
                    .unwrap()
                    .trim();
                checked += 1;
                if !names.iter().any(|n| exposed.has_label(n, label)) {
                    wrong.push(format!("{file} / {panel}: no label {label} in `{expr}`"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        exposed.contract.is_some(),
        "offchain/telemetry/METRICS.md is missing: the labels of the API and business \
         metrics cannot be checked ({checked} label uses of the other metrics were)"
    );
    assert!(checked >= 20, "only {checked} label uses checked");
}

#[test]
fn dashboards_are_well_formed() {
    let all = dashboards(&repo_root().join("deploy/grafana")).unwrap();
    assert!(all.len() >= 4, "{} dashboards", all.len());
    let mut uids = BTreeSet::new();
    for (path, d) in &all {
        let file = path.display();
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no uid"));
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}");
        // The data source is a variable, so the dashboard imports into any Grafana.
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
            "{file}: no Prometheus data source variable"
        );
        let panels = d["panels"].as_array().unwrap();
        let mut ids = BTreeSet::new();
        let mut queries = 0;
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: panel id twice"
            );
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
            assert!(
                x + w <= 24,
                "{file}: panel {} overflows the grid",
                p["title"]
            );
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: {}",
                p["title"]
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(
                !targets.is_empty(),
                "{file}: panel {} has no query",
                p["title"]
            );
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(
                    refs.insert(t["refId"].as_str().unwrap()),
                    "{file}: refId twice"
                );
                let e = t["expr"].as_str().unwrap();
                assert!(balanced(e), "{file}: unbalanced brackets in {e}");
                assert!(!metric_names(e).is_empty(), "{file}: no metric in {e}");
                queries += 1;
            }
        }
        assert!(queries >= 6, "{file}: only {queries} queries");
    }
}

/// (), [] and {} nest properly outside string literals.
fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    let mut in_str = false;
    let mut prev = ' ';
    for c in expr.chars() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
        } else if !in_str {
            match c {
                '(' | '[' | '{' => stack.push(c),
                ')' | ']' | '}' => {
                    let open = match c {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    if stack.pop() != Some(open) {
                        return false;
                    }
                }
                _ => {}
            }
        }
        prev = c;
    }
    stack.is_empty() && !in_str
}
