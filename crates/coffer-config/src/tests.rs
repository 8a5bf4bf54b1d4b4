//! Behaviour of the public API, driven by config files written the way Vault operators write them.

use super::*;
use std::time::Duration;

fn hcl(text: &str) -> ServerConfig {
    parse_config(text, ConfigFormat::Hcl).unwrap_or_else(|e| panic!("config should parse: {e}"))
}

fn hcl_error(text: &str) -> ConfigError {
    match parse_config(text, ConfigFormat::Hcl) {
        Ok(config) => panic!("config should be refused, got {config:?}"),
        Err(e) => e,
    }
}

fn json_error(text: &str) -> ConfigError {
    match parse_config(text, ConfigFormat::Json) {
        Ok(config) => panic!("config should be refused, got {config:?}"),
        Err(e) => e,
    }
}

const VAULT_STYLE_HCL: &str = r#"# A typical single-node Vault config.
storage "file" {
  path = "/var/lib/vault/data"
}

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/vault/tls/server.crt"
  tls_key_file  = "/etc/vault/tls/server.key"
  tls_client_ca_file = "/etc/vault/tls/ca.crt"
  tls_require_and_verify_client_cert = "true"
}

api_addr          = "https://vault.example.com:8200"
cluster_addr      = "https://10.0.0.5:8201"
default_lease_ttl = "768h"
max_lease_ttl     = 2764800
disable_mlock     = true
ui                = 1
log_level         = "Warning"
"#;

const VAULT_STYLE_JSON: &str = r#"{
  "storage": {
    "file": {
      "path": "/var/lib/vault/data"
    }
  },
  "listener": [
    {
      "tcp": {
        "address": "0.0.0.0:8200",
        "tls_cert_file": "/etc/vault/tls/server.crt",
        "tls_key_file": "/etc/vault/tls/server.key",
        "tls_client_ca_file": "/etc/vault/tls/ca.crt",
        "tls_require_and_verify_client_cert": "true"
      }
    }
  ],
  "api_addr": "https://vault.example.com:8200",
  "cluster_addr": "https://10.0.0.5:8201",
  "default_lease_ttl": "768h",
  "max_lease_ttl": 2764800,
  "disable_mlock": true,
  "ui": 1,
  "log_level": "Warning"
}"#;

fn expected_vault_style() -> ServerConfig {
    ServerConfig {
        storage: StorageConfig::Embedded {
            path: "/var/lib/vault/data".into(),
        },
        listeners: vec![ListenerConfig {
            address: "0.0.0.0:8200".into(),
            tls_disable: false,
            tls_cert_file: Some("/etc/vault/tls/server.crt".into()),
            tls_key_file: Some("/etc/vault/tls/server.key".into()),
            tls_client_ca_file: Some("/etc/vault/tls/ca.crt".into()),
            tls_require_and_verify_client_cert: true,
            ..Default::default()
        }],
        api_addr: Some("https://vault.example.com:8200".into()),
        cluster_addr: Some("https://10.0.0.5:8201".into()),
        default_lease_ttl: Some(Duration::from_secs(768 * 3600)),
        max_lease_ttl: Some(Duration::from_secs(2_764_800)),
        disable_mlock: true,
        ui: true,
        log_level: Some("warn".into()),
        warnings: vec![],
    }
}

#[test]
fn vault_style_hcl_config_is_understood() {
    assert_eq!(hcl(VAULT_STYLE_HCL), expected_vault_style());
}

#[test]
fn vault_style_json_config_means_the_same_as_the_hcl() {
    let config = parse_config(VAULT_STYLE_JSON, ConfigFormat::Json).unwrap();
    assert_eq!(config, expected_vault_style());
}

#[test]
fn dev_style_config_with_defaults() {
    let config = hcl(r#"
storage "inmem" {}
listener "tcp" {
  tls_disable = 1
}
"#);
    assert_eq!(config.storage, StorageConfig::Memory);
    assert_eq!(
        config.listeners,
        vec![ListenerConfig {
            address: "127.0.0.1:8200".into(),
            tls_disable: true,
            ..Default::default()
        }]
    );
    assert_eq!(config.default_lease_ttl, None);
    assert!(!config.ui && !config.disable_mlock);
    assert_eq!(config.log_level, None);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn legacy_backend_stanza_and_coffer_aliases_mean_embedded_storage() {
    for text in [
        r#"backend "file" { path = "/data" }"#,
        r#"storage "coffer" { path = "/data" }"#,
        r#"storage "embedded" { path = "/data" }"#,
    ] {
        let config = hcl(&format!(
            "{text}\nlistener \"tcp\" {{ tls_disable = true }}\n"
        ));
        assert_eq!(
            config.storage,
            StorageConfig::Embedded {
                path: "/data".into()
            },
            "{text}"
        );
    }
}

#[test]
fn json_accepts_listener_as_a_single_object_and_storage_inmem() {
    let config = parse_config(
        r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"address": "127.0.0.1:9200", "tls_disable": "1"}}}"#,
        ConfigFormat::Json,
    )
    .unwrap();
    assert_eq!(config.storage, StorageConfig::Memory);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].address, "127.0.0.1:9200");
    assert!(config.listeners[0].tls_disable);
}

#[test]
fn several_listeners_are_kept_in_file_order() {
    let config = hcl(r#"
storage "inmem" {}
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = "true"
}
listener "tcp" {
  address       = "[::]:8300"
  tls_cert_file = "/tls/cert.pem"
  tls_key_file  = "/tls/key.pem"
}
"#);
    let addresses: Vec<_> = config
        .listeners
        .iter()
        .map(|l| l.address.as_str())
        .collect();
    assert_eq!(addresses, ["127.0.0.1:8200", "[::]:8300"]);
    assert!(config.listeners[0].tls_disable);
    assert!(!config.listeners[1].tls_disable);
    assert_eq!(
        config.listeners[1].tls_key_file,
        Some("/tls/key.pem".into())
    );
}

#[test]
fn several_json_listeners_in_a_list() {
    let config = parse_config(
        r#"{
  "storage": {"inmem": {}},
  "listener": [
    {"tcp": {"address": "127.0.0.1:8200", "tls_disable": true}},
    {"tcp": {"address": "127.0.0.1:8201", "tls_disable": 1}}
  ]
}"#,
        ConfigFormat::Json,
    )
    .unwrap();
    let addresses: Vec<_> = config
        .listeners
        .iter()
        .map(|l| l.address.as_str())
        .collect();
    assert_eq!(addresses, ["127.0.0.1:8200", "127.0.0.1:8201"]);
}

#[test]
fn durations_accept_vault_spellings() {
    let cases = [
        ("\"768h\"", 768 * 3600),
        ("\"1h30m\"", 5400),
        ("3600", 3600),
        ("\"3600\"", 3600),
        ("\"2d\"", 172_800),
    ];
    for (written, seconds) in cases {
        let config = hcl(&format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{ tls_disable = true }}\ndefault_lease_ttl = {written}\nmax_lease_ttl = \"8760h\"\n"
        ));
        assert_eq!(
            config.default_lease_ttl,
            Some(Duration::from_secs(seconds)),
            "{written}"
        );
        assert_eq!(config.max_lease_ttl, Some(Duration::from_secs(8760 * 3600)));
    }
}

#[test]
fn booleans_are_as_lenient_as_vault() {
    for (written, expected) in [
        ("true", true),
        ("\"true\"", true),
        ("1", true),
        ("\"1\"", true),
        ("\"T\"", true),
        ("false", false),
        ("\"false\"", false),
        ("0", false),
        ("\"0\"", false),
        ("\"\"", false),
    ] {
        let config = hcl(&format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{ tls_disable = true }}\nui = {written}\n"
        ));
        assert_eq!(config.ui, expected, "ui = {written}");
    }
}

#[test]
fn log_level_is_validated_and_normalised() {
    for (written, canonical) in [
        ("trace", "trace"),
        ("DEBUG", "debug"),
        ("info", "info"),
        ("warn", "warn"),
        ("err", "error"),
    ] {
        let config = hcl(&format!(
            "storage \"inmem\" {{}}\nlog_level = \"{written}\"\n"
        ));
        assert_eq!(config.log_level.as_deref(), Some(canonical));
    }
    let err = hcl_error("storage \"inmem\" {}\n\nlog_level = \"loud\"\n");
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string()
            .contains("log_level must be one of trace, debug, info, warn, error"),
        "{err}"
    );
}

// ----- errors name the line ------------------------------------------------------------------

#[test]
fn hcl_syntax_error_names_line_and_column_but_not_the_source_text() {
    let err =
        hcl_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  vault_token = \"s.SECRETVALUE\n}\n");
    let ConfigError::Syntax { line, column, .. } = &err else {
        panic!("expected a syntax error, got {err:?}")
    };
    assert_eq!(*line, 3);
    assert!(*column > 0);
    assert!(err.to_string().starts_with("line 3, column "), "{err}");
    assert!(!err.to_string().contains("SECRETVALUE"), "{err}");
}

#[test]
fn json_syntax_error_names_line_and_column() {
    let err = json_error("{\n  \"storage\": {\"inmem\": {}},\n  \"ui\": yes,\n  \"x\": 1\n}");
    assert!(
        matches!(err, ConfigError::Syntax { line: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("line 3, column "), "{err}");
}

#[test]
fn tls_disable_that_is_not_a_boolean_names_its_line() {
    let text = r#"storage "file" {
  path = "/data"
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = "maybe"
}
"#;
    let err = hcl_error(text);
    assert_eq!(err.line(), Some(7));
    assert_eq!(
        err.to_string(),
        r#"line 7: listener "tcp": tls_disable must be a boolean, got "maybe""#
    );
}

#[test]
fn tls_disable_that_is_not_a_boolean_names_its_line_in_json() {
    let text = r#"{
  "storage": {"inmem": {}},
  "listener": [
    {"tcp": {
      "address": "127.0.0.1:8200",
      "tls_disable": "maybe"
    }}
  ]
}"#;
    let err = json_error(text);
    assert_eq!(
        err.to_string(),
        r#"line 6: listener "tcp": tls_disable must be a boolean, got "maybe""#
    );
}

#[test]
fn tls_without_a_certificate_is_refused_at_the_listener() {
    let text = "storage \"inmem\" {}\n\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n}\n";
    let err = hcl_error(text);
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string()
            .contains("tls_cert_file is required when TLS is enabled"),
        "{err}"
    );

    let only_cert = "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_file = \"/c.pem\"\n}\n";
    let err = hcl_error(only_cert);
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string().contains("tls_key_file is required"),
        "{err}"
    );
}

#[test]
fn bad_duration_names_its_line() {
    let err = hcl_error("storage \"inmem\" {}\nui = true\ndefault_lease_ttl = \"forever\"\n");
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string()
            .starts_with("line 3: default_lease_ttl: invalid duration \"forever\""),
        "{err}"
    );

    let err = json_error("{\n  \"storage\": {\"inmem\": {}},\n  \"max_lease_ttl\": -5\n}");
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().contains("max_lease_ttl"), "{err}");
}

#[test]
fn default_lease_longer_than_max_is_refused() {
    let err =
        hcl_error("storage \"inmem\" {}\ndefault_lease_ttl = \"48h\"\nmax_lease_ttl = \"24h\"\n");
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string()
            .contains("must not be longer than max_lease_ttl"),
        "{err}"
    );
}

#[test]
fn storage_without_path_names_the_stanza_line() {
    let err = hcl_error(
        "listener \"tcp\" { tls_disable = true }\n\nstorage \"file\" {\n  redirect_addr = \"a\"\n}\n",
    );
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string()
            .contains(r#"storage "file": path is required"#),
        "{err}"
    );

    let err = json_error("{\n  \"storage\": {\n    \"file\": {}\n  }\n}");
    assert_eq!(err.line(), Some(3));
}

#[test]
fn empty_storage_path_is_refused() {
    let err = hcl_error("storage \"file\" {\n  path = \"\"\n}\n");
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("path must not be empty"), "{err}");
}

#[test]
fn missing_storage_is_refused_with_an_example() {
    let err = hcl_error("listener \"tcp\" { tls_disable = true }\nui = true\n");
    assert_eq!(err.line(), None);
    assert!(err.to_string().contains("no storage stanza"), "{err}");
    assert!(err.to_string().contains("storage \"file\""), "{err}");
}

#[test]
fn two_storage_stanzas_are_refused_at_the_second() {
    let err = hcl_error("storage \"file\" { path = \"/a\" }\n\nbackend \"inmem\" {}\n");
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string()
            .contains("only one storage stanza is allowed; the first is on line 1"),
        "{err}"
    );
}

#[test]
fn unsupported_storage_type_is_an_error_naming_type_and_alternatives() {
    let err =
        hcl_error("ui = true\nstorage \"raft\" {\n  path = \"/raft\"\n  node_id = \"n1\"\n}\n");
    assert_eq!(err.line(), Some(2));
    let message = err.to_string();
    assert!(
        message.contains("storage type \"raft\" is not supported"),
        "{message}"
    );
    assert!(
        message.contains("\"file\"") && message.contains("\"inmem\""),
        "{message}"
    );

    let err =
        json_error("{\n  \"storage\": {\n    \"postgresql\": {\"connection_url\": \"x\"}\n  }\n}");
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().contains("\"postgresql\""), "{err}");
}

#[test]
fn listener_type_other_than_tcp_is_refused() {
    let err = hcl_error(
        "storage \"inmem\" {}\nlistener \"unix\" {\n  address = \"/run/vault.sock\"\n}\n",
    );
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string()
            .contains("listener type \"unix\" is not supported"),
        "{err}"
    );
}

#[test]
fn malformed_listener_address_names_its_line() {
    let err = hcl_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  address = \"localhost\"\n}\n");
    assert_eq!(err.line(), Some(4));
    assert!(err.to_string().contains("host:port"), "{err}");
}

#[test]
fn wrongly_typed_secret_looking_values_are_not_echoed() {
    let err = hcl_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  tls_key_file = [\"hunter2-secret\"]\n}\n");
    assert_eq!(err.line(), Some(4));
    // A file path is not a secret, so the wrong value is shown to help the operator...
    assert!(err.to_string().contains("hunter2-secret"), "{err}");

    // ...but nothing in a key that looks secret is ever repeated back, even inside a stanza
    // we do not support.
    let config = hcl("storage \"inmem\" {}\nseal \"transit\" {\n  token = \"s.TOPSECRET\"\n}\n");
    assert!(
        config.warnings.iter().all(|w| !w.contains("TOPSECRET")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn hcl_expressions_are_refused_rather_than_guessed() {
    let err = hcl_error("storage \"file\" {\n  path = \"${env.HOME}/data\"\n}\n");
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("must be a literal value"), "{err}");
}

#[test]
fn config_arithmetic_is_an_error_not_a_panic() {
    // Found by fuzzing (fuzz/regressions/config_parse): hcl-rs's evaluator panics on these.
    for (text, line) in [
        ("storage \"inmem\" {}\nx = 1 % 0\n", 2),
        ("storage \"inmem\" {}\nx = -1 % -0\n", 2),
        ("storage \"inmem\" {}\nx = 18446744073709551615 * 2\n", 2),
        ("storage \"inmem\" {}\nx = \"${1 % 0}\"\n", 2),
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = [1 % 0]\n}\n",
            3,
        ),
    ] {
        let err = hcl_error(text);
        assert_eq!(err.line(), Some(line), "{text}");
        assert!(err.to_string().contains("must be a literal value"), "{err}");
    }
    // Literal heredocs, arrays and objects still work.
    hcl("storage \"inmem\" {}\nui = true\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = true\n}\ntelemetry = {a = [1, \"b\"]}\n");
}

#[test]
fn deep_nesting_is_refused_before_the_parser_sees_it() {
    // Found by fuzzing (fuzz/regressions/config_parse/timeout-4381…): objects nested in an
    // expression make hcl-rs backtrack, doubling its work per level (2 s for these 509 bytes in
    // a release build, over 10 s under the fuzzer). Without the guard this test takes seconds.
    let found = include_str!(
        "../../../fuzz/regressions/config_parse/timeout-43818256b21d509e749cc70a8b05d2174a804ae0"
    );
    let err = hcl_error(found);
    assert!(
        err.to_string().contains("nest more than 10 levels"),
        "{err}"
    );
    assert_eq!(err.line(), Some(10));
    // The same shape, built to any depth, is refused at the bracket that goes too deep.
    let built = format!(
        "storage \"inmem\" {{}}\nx = (r{}\n",
        " % { r / l".repeat(40)
    );
    let err = hcl_error(&built);
    assert_eq!(err.line(), Some(2));
    // Ten levels (more than any real config) still parse as before.
    hcl("storage \"inmem\" {}\nexperiments = [[[[[[[[[[1]]]]]]]]]]\n");
}

// ----- warnings ------------------------------------------------------------------------------

#[test]
fn unknown_and_unsupported_stanzas_become_warnings_with_lines() {
    let config = hcl(r#"storage "inmem" {}
listener "tcp" {
  tls_disable     = true
  tls_min_version = "tls12"
  telemetry {
    unauthenticated_metrics_access = true
  }
}
cluster_name     = "prod"
plugin_directory = "/etc/vault/plugins"
ha_storage "consul" {
  address = "127.0.0.1:8500"
}
telemetry {
  prometheus_retention_time = "30s"
}
"#);
    assert_eq!(
        config.warnings,
        vec![
            r#"line 4: listener "tcp": "tls_min_version" is not supported by Coffer yet and is ignored"#,
            r#"line 5: listener "tcp": "telemetry" is not supported by Coffer yet and is ignored"#,
            r#"line 9: "cluster_name" is not supported by Coffer yet and is ignored"#,
            r#"line 10: "plugin_directory" is not supported by Coffer yet and is ignored"#,
            r#"line 11: "ha_storage" is not supported by Coffer yet and is ignored"#,
            r#"line 14: "telemetry" is not supported by Coffer yet and is ignored"#,
        ]
    );
}

#[test]
fn a_misspelt_key_is_an_error_naming_the_key_meant() {
    let err = hcl_error(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  adress      = \"127.0.0.1:8200\"\n  tls_disable = true\n}\n",
    );
    assert_eq!(err.line(), Some(3));
    assert_eq!(
        err.to_string(),
        r#"line 3: listener "tcp": unknown key "adress"; did you mean `address`?"#
    );

    let err = hcl_error("storage \"file\" {\n  path = \"/d\"\n  pth = \"/e\"\n}\n");
    assert_eq!(
        err.to_string(),
        r#"line 3: storage "file": unknown key "pth"; did you mean `path`?"#
    );

    let err = hcl_error("storage \"inmem\" {}\nuii = true\n");
    assert_eq!(
        err.to_string(),
        r#"line 2: unknown key "uii"; did you mean `ui`?"#
    );

    let err = parse_config(
        "{\n  \"storage\": {\"inmem\": {}},\n  \"listener\": {\"tcp\": {\"tls_disable\": true, \"max_conections\": 5}}\n}",
        ConfigFormat::Json,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("did you mean `max_connections`?"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_far_from_any_known_one_lists_the_keys_read_there() {
    let err = hcl_error(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  bogus_setting = 1\n}\n",
    );
    let text = err.to_string();
    assert!(
        text.starts_with(r#"line 4: listener "tcp": unknown key "bogus_setting"; the keys Coffer reads here are address, tls_disable"#),
        "{text}"
    );
    // A key Vault knows there is still only a warning.
    let config = hcl("storage \"file\" {\n  path = \"/d\"\n  redirect_addr = \"https://a\"\n}\n");
    assert_eq!(
        config.warnings[0],
        r#"line 3: storage "file": "redirect_addr" is not supported by Coffer yet and is ignored"#
    );
}

#[test]
fn unknown_json_keys_become_warnings_with_lines() {
    let config = parse_config(
        "{\n  \"storage\": {\"inmem\": {}},\n  \"listener\": {\"tcp\": {\"tls_disable\": true}},\n  \"telemetry\": {\"statsite_address\": \"x\"}\n}",
        ConfigFormat::Json,
    )
    .unwrap();
    assert_eq!(
        config.warnings,
        vec![r#"line 4: "telemetry" is not supported by Coffer yet and is ignored"#]
    );
}

#[test]
fn a_setting_given_twice_is_refused_at_the_second() {
    let err = hcl_error("storage \"inmem\" {}\nui = false\nui = true\n");
    assert_eq!(err.line(), Some(3));

    let err = json_error("{\n  \"storage\": {\"inmem\": {}},\n  \"ui\": false,\n  \"ui\": true\n}");
    assert_eq!(
        err.to_string(),
        r#"line 4: "ui" is defined twice in the same object (first on line 3)"#
    );
}

#[test]
fn a_config_without_listeners_warns() {
    let config = hcl("storage \"inmem\" {}\n");
    assert!(config.listeners.is_empty());
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("no listener stanza"),
        "{:?}",
        config.warnings
    );
}

// ----- files ---------------------------------------------------------------------------------

#[test]
fn format_is_picked_by_extension() {
    assert_eq!(
        ConfigFormat::from_path(Path::new("/etc/vault.d/vault.json")),
        ConfigFormat::Json
    );
    assert_eq!(
        ConfigFormat::from_path(Path::new("config.JSON")),
        ConfigFormat::Json
    );
    assert_eq!(
        ConfigFormat::from_path(Path::new("vault.hcl")),
        ConfigFormat::Hcl
    );
    assert_eq!(
        ConfigFormat::from_path(Path::new("vault.conf")),
        ConfigFormat::Hcl
    );
    assert_eq!(
        ConfigFormat::from_path(Path::new("config")),
        ConfigFormat::Hcl
    );
}

#[test]
fn load_config_reads_hcl_and_json_files_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let hcl_path = dir.path().join("server.hcl");
    std::fs::write(&hcl_path, VAULT_STYLE_HCL).unwrap();
    assert_eq!(load_config(&hcl_path).unwrap(), expected_vault_style());

    let json_path = dir.path().join("server.json");
    std::fs::write(&json_path, VAULT_STYLE_JSON).unwrap();
    assert_eq!(load_config(&json_path).unwrap(), expected_vault_style());

    // JSON text in a .hcl file is read as HCL, as Vault does; it is not valid HCL.
    let misnamed = dir.path().join("server-json.hcl");
    std::fs::write(&misnamed, VAULT_STYLE_JSON).unwrap();
    assert!(matches!(
        load_config(&misnamed),
        Err(ConfigError::InFile { .. })
    ));
}

#[test]
fn load_config_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.hcl");
    std::fs::write(&path, "storage \"inmem\" {}\nui = \"sometimes\"\n").unwrap();
    let err = load_config(&path).unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 2: ui must be a boolean, got \"sometimes\"",
            path.display()
        )
    );

    let missing = dir.path().join("absent.hcl");
    let err = load_config(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.hcl"), "{err}");
}

#[test]
fn json_listener_type_may_hold_a_list_of_bodies() {
    let config = parse_config(
        r#"{"storage": {"inmem": {}}, "listener": {"tcp": [{"address": "127.0.0.1:1", "tls_disable": true}, {"address": "127.0.0.1:2", "tls_disable": true}]}}"#,
        ConfigFormat::Json,
    )
    .unwrap();
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[1].address, "127.0.0.1:2");
}

#[test]
fn storage_stanza_without_a_type_label_is_refused() {
    let err = hcl_error("ui = true\nstorage {\n  path = \"/data\"\n}\n");
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("exactly one type label"), "{err}");
}

// ----- listener limits -----------------------------------------------------------------------

#[test]
fn listener_timeouts_and_connection_cap_default_to_vaults_values() {
    let config = hcl("storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n");
    let listener = &config.listeners[0];
    assert_eq!(listener.http_read_header_timeout, Duration::from_secs(10));
    assert_eq!(listener.http_read_timeout, Duration::from_secs(30));
    assert_eq!(listener.http_write_timeout, Duration::ZERO);
    assert_eq!(listener.http_idle_timeout, Duration::from_secs(300));
    assert_eq!(listener.max_connections, DEFAULT_MAX_CONNECTIONS);
}

#[test]
fn listener_timeouts_take_go_durations_or_seconds_and_the_cap_a_count() {
    let config = hcl(r#"storage "inmem" {}
listener "tcp" {
  tls_disable              = true
  http_read_header_timeout = "1500ms"
  http_read_timeout        = 45
  http_write_timeout       = "1m30s"
  http_idle_timeout        = "0"
  max_connections          = "64"
}
"#);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let listener = &config.listeners[0];
    assert_eq!(
        listener.http_read_header_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(listener.http_read_timeout, Duration::from_secs(45));
    assert_eq!(listener.http_write_timeout, Duration::from_secs(90));
    assert_eq!(listener.http_idle_timeout, Duration::ZERO);
    assert_eq!(listener.max_connections, 64);

    let json = parse_config(
        r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true, "http_idle_timeout": "5m", "max_connections": 0}}}"#,
        ConfigFormat::Json,
    )
    .unwrap();
    assert_eq!(
        json.listeners[0].http_idle_timeout,
        Duration::from_secs(300)
    );
    assert_eq!(json.listeners[0].max_connections, 0);
}

#[test]
fn bad_listener_timeouts_and_caps_are_refused_with_their_line() {
    let err = hcl_error(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  http_idle_timeout = \"5 minutes\"\n}\n",
    );
    assert_eq!(err.line(), Some(4));
    assert!(err.to_string().contains("http_idle_timeout"), "{err}");
    for bad in ["-1", "\"many\"", "1.5", "true"] {
        let err = hcl_error(&format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  tls_disable = true\n  max_connections = {bad}\n}}\n"
        ));
        assert_eq!(err.line(), Some(4), "{bad}");
        assert!(err.to_string().contains("max_connections"), "{err}");
    }
}
