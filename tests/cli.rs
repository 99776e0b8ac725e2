//! `validate` and `check`: what users see, and the errors that name where the problem is.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_iocsink");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("iocsink runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes a config (and a feed) into a temp dir and returns (dir, config path).
fn write_config(body: &str, feed: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.txt"), feed).unwrap();
    let path = dir.path().join("iocsink.toml");
    std::fs::write(
        &path,
        body.replace("DIR", &dir.path().display().to_string()),
    )
    .unwrap();
    (dir, path)
}

const GOOD: &str = r#"[server]
listen = ["127.0.0.1:0"]

[upstream]
servers = ["127.0.0.1:53"]

[[feed]]
name = "local"
path = "DIR/feed.txt"
malware = "TestFamily"
"#;

#[test]
fn validate_accepts_the_shipped_config_and_counts_feeds() {
    let o = run(
        &["validate", "--config", "config/iocsink.toml"],
        Path::new(ROOT),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("config OK: config/iocsink.toml"), "{out}");
    assert!(
        out.contains("feed threatfox-maskgramstealer: 2 indicators (threatfox-csv"),
        "{out}"
    );
}

#[test]
fn validate_reports_toml_errors_with_file_and_line() {
    let (dir, path) = write_config("[server]\nlisten = [\"127.0.0.1:0\"\n", "");
    let o = run(
        &["validate", "--config", path.to_str().unwrap()],
        dir.path(),
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn validate_names_unknown_keys_and_bad_values() {
    let (dir, path) = write_config(&GOOD.replace("[upstream]", "[upstream]\ntimeout = 5"), "");
    let (_, err) = text(&run(
        &["validate", "--config", path.to_str().unwrap()],
        dir.path(),
    ));
    assert!(
        err.contains("unknown field `timeout`") && err.contains("line 5"),
        "{err}"
    );

    let bad_cidr = GOOD.replace(
        "[server]\n",
        "[server]\nallow_clients = [\"10.0.0.0/33\"]\n",
    );
    let (dir, path) = write_config(&bad_cidr, "");
    let o = run(
        &["validate", "--config", path.to_str().unwrap()],
        dir.path(),
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("line 2") && err.contains("allow_clients"),
        "{err}"
    );

    let bad_allow = format!("{GOOD}\n[allow]\ndomains = [\"ok.test\", \"bad domain.test\"]\n");
    let (dir, path) = write_config(&bad_allow, "");
    let (_, err) = text(&run(
        &["validate", "--config", path.to_str().unwrap()],
        dir.path(),
    ));
    assert!(err.contains(&format!("{}:13", path.display())), "{err}");
    assert!(
        err.contains("allow.domains") && err.contains("bad domain.test"),
        "{err}"
    );
}

#[test]
fn validate_fails_on_an_unreadable_feed_naming_it() {
    let (dir, path) = write_config(&GOOD.replace("feed.txt", "missing.txt"), "");
    let o = run(
        &["validate", "--config", path.to_str().unwrap()],
        dir.path(),
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("feed \"local\"") && err.contains("missing.txt"),
        "{err}"
    );
    assert!(err.contains(&format!("{}:8", path.display())), "{err}");
}

#[test]
fn validate_reports_skipped_feed_lines_with_file_and_line() {
    let (dir, path) = write_config(
        GOOD,
        "good.test\nbad name here\n# comment\nbad_label-.te$t\n",
    );
    let o = run(
        &["validate", "--config", path.to_str().unwrap()],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "skipped lines: exit 2");
    assert!(out.contains("feed local: 1 indicators (domains"), "{out}");
    let feed = dir.path().join("feed.txt");
    assert!(err.contains(&format!("{}:2:", feed.display())), "{err}");
    assert!(err.contains(&format!("{}:4:", feed.display())), "{err}");
}

#[test]
fn check_explains_a_block_with_feed_and_metadata() {
    let o = run(
        &["check", "WS.Geschmeidig6307-kotyatanet.sbs."],
        Path::new(ROOT),
    );
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.starts_with("ws.geschmeidig6307-kotyatanet.sbs: BLOCKED (nxdomain)"),
        "{out}"
    );
    assert!(
        out.contains("indicator: ws.geschmeidig6307-kotyatanet.sbs"),
        "{out}"
    );
    assert!(
        out.contains("feed: threatfox-maskgramstealer (config/feeds/maskgramstealer.csv:8)"),
        "{out}"
    );
    assert!(out.contains("malware: MaskGramStealer"), "{out}");
    assert!(out.contains("threat_type: botnet_cc"), "{out}");
    assert!(out.contains("confidence: 100"), "{out}");

    let o = run(
        &["check", "xgeschmeidig6307-kotyatanet.sbs"],
        Path::new(ROOT),
    );
    assert!(text(&o).0.contains("not listed"), "{:?}", text(&o));
}

#[test]
fn check_explains_allow_rules() {
    let body =
        format!("{GOOD}\n[allow]\ndomains = [\"*.good.test\"]\nclients = [\"127.0.0.2/32\"]\n");
    let (dir, path) = write_config(&body, "good.test\n");
    let cfg = path.to_str().unwrap();
    let (out, _) = text(&run(&["check", "a.good.test", "--config", cfg], dir.path()));
    assert!(
        out.contains("ALLOWED by allow.domains *.good.test"),
        "{out}"
    );
    let (out, _) = text(&run(&["check", "good.test", "--config", cfg], dir.path()));
    assert!(
        out.contains("BLOCKED"),
        "the wildcard allows only names below: {out}"
    );
    let (out, _) = text(&run(
        &[
            "check",
            "good.test",
            "--client",
            "127.0.0.2",
            "--config",
            cfg,
        ],
        dir.path(),
    ));
    assert!(
        out.contains("ALLOWED by allow.clients 127.0.0.2/32"),
        "{out}"
    );
    assert!(out.contains("malware: TestFamily"), "{out}");
    let (out, _) = text(&run(
        &[
            "check",
            "good.test",
            "--client",
            "192.0.2.1",
            "--config",
            cfg,
        ],
        dir.path(),
    ));
    assert!(out.contains("REFUSED"), "{out}");
}
