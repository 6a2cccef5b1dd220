//! The CLI as an operator meets it: one-line errors, all-or-nothing imports,
//! `ledger verify` naming a broken entry, and `--help` on every command.

use std::io::Write;
use tests::Deployment;

fn run(dep: &Deployment, args: &[&str]) -> (i32, String, String) {
    let out = dep.command().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A migrated SQLite deployment with the sites in `csv` imported.
fn deployment_with_sites(csv: &str) -> Deployment {
    let dep = Deployment::sqlite();
    let (code, _, err) = run(&dep, &["migrate"]);
    assert_eq!(code, 0, "{err}");
    let sites = dep.dir.path().join("sites.csv");
    std::fs::write(&sites, csv).unwrap();
    let (code, _, err) = run(&dep, &["site", "import", sites.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    dep
}

/// `lifelong plugin build` of the test plugin `name` into the deployment's
/// folder; returns the package path and what the command printed.
fn build_plugin(dep: &Deployment, name: &str) -> (std::path::PathBuf, String) {
    let plugin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins")
        .join(name);
    let pkg = dep.dir.path().join(format!("{name}.llpkg"));
    let (code, out, err) = run(
        dep,
        &[
            "plugin",
            "build",
            plugin.to_str().unwrap(),
            "--out",
            pkg.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    (pkg, out)
}

#[test]
fn every_command_has_help() {
    let dep = Deployment::sqlite();
    for cmd in [
        &["serve"][..],
        &["migrate"],
        &["admin", "bootstrap"],
        &["site", "import"],
        &["site", "export"],
        &["person", "import"],
        &["ledger", "verify"],
        &["demo"],
        &["plugin", "build"],
        &["plugin", "keygen"],
        &["plugin", "sign"],
        &["plugin", "trust"],
        &["plugin", "install"],
        &["plugin", "list"],
        &["plugin", "info"],
        &["plugin", "enable"],
        &["plugin", "disable"],
        &["plugin", "grant"],
        &["plugin", "settings"],
        &["plugin", "upgrade"],
        &["plugin", "rollback"],
        &["plugin", "remove"],
    ] {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--help");
        let (code, out, _) = run(&dep, &args);
        assert_eq!(code, 0, "{cmd:?}");
        assert!(out.contains("Usage: lifelong"), "{cmd:?}: {out}");
    }
}

#[test]
fn imports_report_row_errors_and_write_nothing() {
    let dep = Deployment::sqlite();
    let (code, _, err) = run(&dep, &["migrate"]);
    assert_eq!(code, 0, "{err}");
    let sites = dep.dir.path().join("sites.csv");
    std::fs::write(
        &sites,
        "code,name_zh,kind,parent_code\nC,市,city,\nT1,一镇,township,C\nV1,一村,village,C\n",
    )
    .unwrap();
    let (code, _, err) = run(&dep, &["site", "import", sites.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(err, "line 4: parent_code: a village must be under a township, but C is a city\nerror: 1 row error(s); nothing was imported\n");
    let (code, out, _) = run(&dep, &["site", "export"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "nothing was written: {out}");
    std::fs::write(
        &sites,
        "code,name_zh,kind,parent_code\nC,市,city,\nT1,一镇,township,C\nV1,一村,village,T1\n",
    )
    .unwrap();
    let (code, out, err) = run(&dep, &["site", "import", sites.to_str().unwrap()]);
    assert_eq!(
        (code, out.as_str()),
        (0, "imported: 3 created, 0 updated\n"),
        "{err}"
    );

    let persons = dep.dir.path().join("persons.csv");
    let good = kernel::idnumber::synthesize(
        350602,
        chrono::NaiveDate::from_ymd_opt(1955, 1, 2).unwrap(),
        5,
        kernel::idnumber::Sex::Male,
    );
    let mut f = std::fs::File::create(&persons).unwrap();
    writeln!(f, "name,id_number,phone,home_site").unwrap();
    writeln!(f, "甲,{good},13800001111,V1").unwrap();
    writeln!(f, "乙,110105194912310021,,V1").unwrap();
    drop(f);
    let (code, out, err) = run(&dep, &["person", "import", persons.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(err, "line 3: id_number: 1101**********0021 fails the GB 11643 check digit\nerror: 1 row error(s); nothing was imported\n");
    std::fs::write(
        &persons,
        format!("name,id_number,phone,home_site\n甲,{good},13800001111,V1\n"),
    )
    .unwrap();
    let (code, out, err) = run(&dep, &["person", "import", persons.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "imported 1 persons\n"), "{err}");
    let (code, out, _) = run(&dep, &["ledger", "verify"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ok: 1 accounts, 0 entries"), "{out}");
}

#[test]
fn bad_configuration_is_one_line() {
    let dep = Deployment::sqlite();
    let (code, _, err) = run(&dep, &["--config", "/nonexistent/lifelong.toml", "migrate"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: cannot read config file /nonexistent/lifelong.toml: entity not found\n"
    );
    let out = dep
        .command()
        .env("LIFELONG_DATABASE_URL", "mysql://x")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: unsupported database URL (expected sqlite://… or postgres://…): mysql://x\n"
    );
    let out = dep
        .command()
        .env("LIFELONG_PII_KEY", "short")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "migrate does not need the key");
    let out = dep
        .command()
        .env("LIFELONG_PII_KEY", "short")
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: pii_key: the PII key must be 32 bytes written as 64 hex characters\n"
    );
}

/// The publisher's and the operator's path through the CLI: make a key,
/// build and sign a package, trust the publisher, install, grant, enable,
/// set a setting; and the refusals on the way, one line each.
#[test]
fn plugin_packages_from_build_to_enabled() {
    let dep =
        deployment_with_sites("code,name_zh,kind,parent_code\nC,市,city,\nT1,一镇,township,C\n");
    let dir = dep.dir.path();

    let key = dir.join("lifelong.key");
    let (code, out, err) = run(
        &dep,
        &[
            "plugin",
            "keygen",
            "--publisher",
            "lifelong",
            "--out",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .to_string();
    let (code, _, err) = run(
        &dep,
        &[
            "plugin",
            "keygen",
            "--publisher",
            "lifelong",
            "--out",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot create") && err.lines().count() == 1,
        "{err}"
    );

    let (pkg, out) = build_plugin(&dep, "probe");
    assert!(
        out.starts_with("built probe 1.0.0 (") && out.contains(", unsigned)"),
        "{out}"
    );

    // Not development mode: unsigned, then unknown publisher, are refused.
    let install = |dep: &Deployment| run(dep, &["plugin", "install", pkg.to_str().unwrap()]);
    let (code, _, err) = install(&dep);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: signature: the package is not signed;") && err.lines().count() == 1,
        "{err}"
    );
    let (code, out, err) = run(
        &dep,
        &[
            "plugin",
            "sign",
            pkg.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "signed probe 1.0.0 as lifelong\n");
    let (code, _, err) = install(&dep);
    assert_eq!(code, 1);
    assert_eq!(err, "error: signature: publisher \"lifelong\" is not in the trust store; a city admin must add its public key first\n");
    let (code, _, err) = run(&dep, &["plugin", "trust", "lifelong", &public]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = install(&dep);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("installed probe 1.0.0 by lifelong, signed"),
        "{out}"
    );

    let (code, _, err) = run(&dep, &["plugin", "enable", "probe", "--site", "T1"]);
    assert_eq!(code, 1);
    assert_eq!(err, "error: plugin probe asks for sites.read, identity.read, accounts.record, accounts.read, not granted at site T1; grant them first\n");
    let (code, _, err) = run(
        &dep,
        &[
            "plugin",
            "grant",
            "probe",
            "--site",
            "C",
            "sites.read",
            "identity.read",
            "accounts.record",
            "accounts.read",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&dep, &["plugin", "enable", "probe", "--site", "T1"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&dep, &["plugin", "list"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "probe 1.0.0 by lifelong, signed  enabled at: T1\n")
    );
    let (code, out, err) = run(
        &dep,
        &["plugin", "settings", "probe", "--site", "T1", "min_age=60"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "min_age = 60\n");
    let (code, _, err) = run(
        &dep,
        &["plugin", "settings", "probe", "--site", "T1", "min_age=old"],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: value: setting min_age of plugin probe is of type integer\n"
    );
    let (code, _, err) = run(&dep, &["plugin", "upgrade", pkg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("an upgrade must go to a higher version, not 1.0.0"),
        "{err}"
    );
    let (code, _, err) = run(&dep, &["plugin", "rollback", "probe"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("has no earlier version to roll back to"),
        "{err}"
    );
    let (code, out, _) = run(&dep, &["plugin", "info", "probe"]);
    assert_eq!(code, 0);
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["grants"].as_array().unwrap().len(), 4);
}

/// A running kernel picks up what the CLI changes in the registry (as
/// another node would): enabling serves the plugin, disabling stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_kernel_follows_registry_changes_made_by_the_cli() {
    let dep = deployment_with_sites("code,name_zh,kind,parent_code\nC,市,city,\n");
    let (pkg, _) = build_plugin(&dep, "other");
    let dev = |args: &[&str]| {
        let out = dep
            .command()
            .env("LIFELONG_DEV_MODE", "1")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    dev(&["plugin", "install", pkg.to_str().unwrap()]);
    let (mut child, url) = dep.serve();
    let client = reqwest::Client::new();
    let status = |client: reqwest::Client, url: String| async move {
        client
            .get(format!("{url}/api/v1/plugins/other/receipts?site=C"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        status(client.clone(), url.clone()).await,
        404,
        "installed, not enabled"
    );
    dev(&["plugin", "enable", "other", "--site", "C"]);
    let mut seen = 0;
    for _ in 0..50 {
        seen = status(client.clone(), url.clone()).await;
        if seen == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 200, "the server picked up the enablement");
    dev(&["plugin", "disable", "other", "--site", "C"]);
    for _ in 0..50 {
        seen = status(client.clone(), url.clone()).await;
        if seen == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 404, "the server picked up the disablement");
    let _ = child.kill();
    let _ = child.wait();
}
