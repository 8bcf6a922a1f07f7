//! The command line teaches itself: every command's `--help` ends with examples, and
//! `polyshop completions <shell>` prints a completion script that knows every command. And it
//! keeps secrets: `polyshop admin config` shows none.

use std::process::Command;

/// Runs `polyshop <args>` (no configuration needed) and returns its stdout.
fn polyshop(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .args(args)
        .output()
        .expect("run polyshop");
    assert!(
        out.status.success(),
        "polyshop {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The subcommands a help text lists under `Commands:`, without clap's own `help`.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // Entries are indented by two; wrapped descriptions by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every visible command below `polyshop`, as argument paths: `["admin", "dlq", "list"]`.
fn every_command() -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        for name in listed_commands(&polyshop(&args)) {
            let mut sub = path.clone();
            sub.push(name);
            found.push(sub.clone());
            todo.push(sub);
        }
    }
    found
}

#[test]
fn every_command_help_ends_with_examples() {
    let commands = every_command();
    // The walk itself works: top-level, nested and new commands are found.
    for expected in ["serve", "up", "admin dlq redrive", "completions"] {
        assert!(
            commands.iter().any(|path| path.join(" ") == expected),
            "{expected} in {commands:?}"
        );
    }
    let mut without = Vec::new();
    for path in std::iter::once(Vec::new()).chain(commands) {
        for flag in ["--help", "-h"] {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push(flag);
            let help = polyshop(&args);
            if !help.contains("\nExamples:\n  ") {
                without.push(args.join(" "));
            }
        }
    }
    assert!(without.is_empty(), "no Examples: section in {without:?}");
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_command() {
    let commands = every_command();
    for shell in ["bash", "zsh", "fish"] {
        let script = polyshop(&["completions", shell]);
        assert!(script.contains("polyshop"), "{shell} script names polyshop");
        for path in &commands {
            let name = path.last().expect("a name");
            assert!(
                script.contains(name.as_str()),
                "the {shell} script completes {}",
                path.join(" ")
            );
        }
    }
    let bash = polyshop(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F") && bash.contains("polyshop"),
        "a bash `complete` registration: {}",
        bash.chars().take(300).collect::<String>()
    );
}

#[test]
fn admin_config_prints_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .args(["admin", "config"])
        .env_clear()
        .env("POLYSHOP_CONFIG", dir.path().join("none.toml"))
        .env("POLYSHOP_USER_ADMIN_PASSWORD", "hunter2-admin")
        .env(
            "POLYSHOP_ORDER_DATABASE_URL",
            "postgres://shop:hunter2-db@db:5432/order",
        )
        .env("POLYSHOP_NATS_URL", "nats://svc:hunter2-nats@nats:4222")
        .output()
        .expect("run polyshop admin config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout).expect("utf-8");
    assert!(!shown.contains("hunter2"), "{shown}");
    let config: serde_json::Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(config["user"]["admin_password"], "<redacted>");
    // What an operator checks stays: scheme, user, host, database.
    assert_eq!(
        config["order"]["database_url"],
        "postgres://shop:<redacted>@db:5432/order"
    );
    assert_eq!(config["nats"]["url"], "nats://svc:<redacted>@nats:4222");
}
