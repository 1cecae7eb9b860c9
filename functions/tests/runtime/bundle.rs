//! Real bundler output: esbuild bundles a function importing `uuid` and `papaparse` (a
//! CommonJS package) into one minified ES module, which deploys and runs. The packages live in
//! `functions/tests/bundle/node_modules`, installed by `./scripts/test` (`npm ci`) when missing.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::*;

fn bundle() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bundle");
    let esbuild = dir.join("node_modules/.bin/esbuild");
    assert!(
        esbuild.exists(),
        "esbuild is missing: run `npm ci` in {} (./scripts/test does)",
        dir.display()
    );
    let out = tempfile_path();
    let status = Command::new(&esbuild)
        .current_dir(&dir)
        .args([
            "src/index.js",
            "--bundle",
            "--minify",
            "--format=esm",
            "--platform=browser",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", out.display()))
        .status()
        .expect("esbuild runs");
    assert!(status.success(), "esbuild failed");
    let code = std::fs::read_to_string(&out).expect("the bundle is written");
    let _ = std::fs::remove_file(&out);
    code
}

fn tempfile_path() -> PathBuf {
    std::env::temp_dir().join(format!("ferrobase-bundle-{}.js", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minified_esbuild_bundle_of_npm_packages_deploys_and_runs() {
    let code = bundle();
    assert!(
        code.contains("export{") && !code.lines().any(|l| l.trim_start().starts_with("export")),
        "the bundle is minified: its export does not start a line"
    );
    let f = fixture_with(config());
    f.deploy("bundled", spec(&code)).await;
    let done = f
        .invoke("bundled", json!({"csv": "sku,qty\nA,2\nB,5\nA,3\n"}))
        .await;
    let value = result(&done);
    assert_eq!(value["totals"], json!({"A": 5, "B": 5}));
    assert_eq!(value["valid"], true);
    assert_eq!(value["id"].as_str().unwrap().len(), 36);
}
