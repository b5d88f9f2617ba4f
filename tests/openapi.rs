//! The OpenAPI document: the checked-in `openapi/openapi.yaml` is exactly what
//! `skypanel openapi` prints, and every operation is documented properly.

#![allow(clippy::unwrap_used)] // test code: a panic with the value is the clearest failure report

use std::process::Command;

use serde_json::Value;

fn generated(format: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_skypanel"))
        .args(["openapi", "--format", format])
        .env_remove("SKYPANEL_CONFIG")
        .output()
        .expect("run skypanel openapi");
    assert!(
        output.status.success(),
        "skypanel openapi failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 spec")
}

#[test]
fn checked_in_spec_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let fresh = generated("yaml");
    assert!(
        checked_in == fresh,
        "openapi/openapi.yaml is out of date: run `cargo run -- openapi --output openapi/openapi.yaml` and commit it"
    );
}

#[test]
fn every_operation_is_documented() {
    let spec: Value = serde_json::from_str(&generated("json")).unwrap();
    let mut count = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, op) in operations.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: no summary"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{name}: no tag"
            );
            assert!(op["operationId"].is_string(), "{name}: no operationId");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('4') || s.starts_with('5')),
                "{name}: no error responses"
            );
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{name}: secured but no 401");
            }
            count += 1;
        }
    }
    assert!(count >= 40, "only {count} operations");
    assert!(spec["components"]["securitySchemes"]["BearerAuth"].is_object());
}
