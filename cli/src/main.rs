//! `polyshop`: run one service (`serve`), the whole system (`up`), admin tasks, or print shell
//! completions. Every command's `--help` ends with examples.

mod admin;
mod admin_status;
mod demo;
mod instances;
mod load;
mod nats_nodes;
mod nats_server;
mod nats_users;
mod services;
mod supervise;
mod up;

// Allocation-heavy request paths (HTTP/2 frames, protobuf, JSON) run measurably faster on
// mimalloc than on glibc malloc, and its per-thread heaps keep the edge's RSS flat.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use polyshop_platform::{config::Settings, telemetry};

use crate::services::Service;

/// Polyshop: an e-commerce backend of gRPC services.
#[derive(Debug, Parser)]
#[command(
    name = "polyshop",
    version,
    after_help = "\
Examples:
  polyshop up                        the whole system on ./data (what `just run` does)
  polyshop serve catalog             one service, against a running NATS
  polyshop admin config              the effective configuration
  source <(polyshop completions bash)
                                     tab completion in this bash session"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one service in the foreground until SIGTERM / Ctrl-C.
    #[command(after_help = "\
Examples:
  polyshop serve catalog          the catalog service alone, on 127.0.0.1:50052
  POLYSHOP_NATS_URL=nats://127.0.0.1:4222 POLYSHOP_ORDER_LISTEN=0.0.0.0:50054 polyshop serve order
                                  the order service on every interface, events on that NATS")]
    Serve {
        /// Which service.
        service: Service,
        /// Stop (SIGTERM) when the parent process dies: set by `up` for its children, so a
        /// killed `up` leaves no orphans.
        #[arg(long, hide = true)]
        supervised: bool,
    },
    /// Run the whole system: a nats-server child and one process per service.
    ///
    /// nats-server (2.11 or later) is taken from `.tools/bin` in the current directory or its
    /// nearest parent that has one (where `just tools` puts it), else from PATH; with
    /// POLYSHOP_NATS_URL set, none is started and that server is used.
    ///
    /// --replicas and --nats-cluster make a cluster on one machine. Every instance of a
    /// context shares that context's one database: its SQLite file under the data dir (WAL
    /// mode lets several processes on one host use it, writers taking turns), or with
    /// --postgres its own PostgreSQL database.
    #[command(after_help = "\
Examples:
  polyshop up                                 data under ./data, demo catalog on first start
  polyshop up --no-demo                       a fresh data dir without demo products
  POLYSHOP_DATA_DIR=/tmp/shop polyshop up     another data dir
  POLYSHOP_NATS_URL=nats://127.0.0.1:4222 polyshop up
                                              use a running NATS (JetStream) instead
  polyshop up --replicas 2 --nats-cluster 3   two instances of every service and edge, a
                                              three-node JetStream cluster (what `just run-cluster` does)
  polyshop up --replicas 2 --postgres postgres://postgres@127.0.0.1:5432/postgres
                                              each context on its own database polyshop_<service>")]
    Up(up::UpArgs),
    /// Operator tasks.
    #[command(
        subcommand,
        after_help = "\
Examples:
  polyshop admin config
  polyshop admin service-token --to polyshop-inventory
  polyshop admin dlq list
  polyshop admin flags list

They read the same configuration as `polyshop up` (polyshop.toml, POLYSHOP_*)."
    )]
    Admin(admin::AdminCommand),
    /// Load an edge with mixed shopper journeys and write a report (JSON, Markdown, HTML).
    ///
    /// Browse, search, product page, sign up, log in, check out (tok_visa), list orders and
    /// read notifications, weighted by --mix; open loop (--rate journeys per second) or closed
    /// loop (--users shoppers). The edge's rate limits must be lifted for a real load, or its
    /// 429s (RESOURCE_EXHAUSTED) dominate the report: see docs/development.md.
    #[command(after_help = "\
Examples:
  polyshop load --rate 100 --duration 20s --report target/load
                                  100 journeys/s for 20 s against http://127.0.0.1:8080
  polyshop load --users 50 --ramp-up 10s --duration 1m
                                  50 shoppers, each starting a journey when the last ends
  polyshop load --url http://10.0.0.5:8080 --rate 20 --mix browse=70,checkout=30
                                  only browsing and checking out, 70:30")]
    Load(load::LoadArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = "\
Examples:
  source <(polyshop completions bash)         this bash session only
  polyshop completions bash > ~/.local/share/bash-completion/completions/polyshop
  polyshop completions zsh > ~/.zfunc/_polyshop     (with ~/.zfunc in fpath, before compinit)
  polyshop completions fish > ~/.config/fish/completions/polyshop.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Replace this process with `program`, which gets SIGTERM when the parent dies (how `up`
    /// starts nats-server).
    #[command(hide = true)]
    ExecSupervised {
        /// The program: a path, or a name looked up on PATH.
        program: String,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Asks the kernel for SIGTERM when the parent exits (Linux); elsewhere a no-op.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    {
        let parent = nix::unistd::getppid();
        if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
            eprintln!("polyshop: cannot ask to stop with the parent: {e}");
        }
        // The parent may have died before the request took effect.
        if nix::unistd::getppid() != parent {
            std::process::exit(1);
        }
    }
}

/// `exec-supervised`: only returns on failure.
fn exec_supervised(program: &str, args: &[String]) -> ExitCode {
    die_with_parent();
    let to_c = |s: &str| std::ffi::CString::new(s.as_bytes());
    let argv: Result<Vec<_>, _> = std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(to_c)
        .collect();
    match (to_c(program), argv) {
        (Ok(file), Ok(argv)) => {
            let Err(e) = nix::unistd::execvp(&file, &argv);
            eprintln!("polyshop: cannot run {program}: {e}");
        }
        _ => eprintln!("polyshop: {program}: arguments contain NUL"),
    }
    ExitCode::FAILURE
}

/// `completions`: the script for `shell` on stdout. A reader that stops early (`| head`) is no
/// error; the generator itself would panic on the broken pipe, so it writes to a buffer.
fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "polyshop", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("polyshop: cannot write the completion script: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // These need no configuration: a bad polyshop.toml must not break them.
    match &cli.command {
        Command::ExecSupervised { program, args } => return exec_supervised(program, args),
        Command::Completions { shell } => return print_completions(*shell),
        Command::Up(_) => {
            if let Some(e) = up::restart_with_allocator_defaults() {
                eprintln!("polyshop: cannot restart with the allocator's options ({e}); going on");
            }
        }
        _ => {}
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("polyshop: {e}");
            return ExitCode::from(2);
        }
    };
    // One worker runs tokio's current-thread scheduler: a plain FIFO of tasks on one thread,
    // without the work-stealing machinery (and its LIFO slot, which lets a just-woken task
    // jump the queue) that one worker cannot use. On two cores it gave the edge a steadier p99.
    let mut builder = match settings.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("polyshop: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                service,
                supervised,
            } => {
                if supervised {
                    die_with_parent();
                }
                let _guard = telemetry::init(service.as_str(), &settings);
                services::serve(service, settings).await
            }
            Command::Up(args) => up::run(args, settings).await,
            Command::ExecSupervised { .. } | Command::Completions { .. } => Ok(()),
            Command::Admin(command) => admin::run(command, settings).await,
            Command::Load(args) => load::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("polyshop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_visible_command_ends_its_help_with_examples() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name()).trim().to_owned();
            let help = command.get_after_help().map(ToString::to_string);
            if !help.is_some_and(|h| h.starts_with("Examples:\n")) {
                missing.push(path.clone());
            }
            for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no Examples: section in {missing:?}");
    }
}
