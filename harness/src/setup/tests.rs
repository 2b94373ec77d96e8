use super::*;

#[test]
fn finds_members_at_any_depth() {
    let body = json!({ "who": null, "credential": { "scope": ["a"] }, "user": { "id": "u" } });
    assert_eq!(find_member(&body, &["scope"], "", false).as_deref(), Some("/credential/scope"));
    assert_eq!(find_member(&body, &["id"], "", false).as_deref(), Some("/user/id"));
    assert_eq!(find_member(&body, &["who"], "", false), None);
    assert_eq!(find_member(&body, &["who"], "", true).as_deref(), Some("/who"));
}

#[test]
fn rendered_config_parses() {
    let probe = Probe {
        base_url: "http://127.0.0.1:8000".into(),
        protected_path: "/api".into(),
        oracle: Some(("/api/resource".into(), "/user/id".into(), "/credential/scope".into())),
        registration_ttl: Some(86400),
        ..Probe::default()
    };
    let text = render(&Probe {
        profile: "v0.1".into(),
        uses_mail: true,
        ..probe.clone()
    });
    let config: TargetConfig = toml::from_str(&text).expect("the rendered config parses");
    assert!(config.check().is_ok());
    assert_eq!(config.oracle.map(|o| o.scopes_pointer).as_deref(), Some("/credential/scope"));
}
