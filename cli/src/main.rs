//! `polyshop`: run one service (`serve`), the whole system (`up`), or admin tasks.

mod admin;
mod demo;
mod services;
mod up;

// Allocation-heavy request paths (HTTP/2 frames, protobuf, JSON) run measurably faster on
// mimalloc than on glibc malloc, and its per-thread heaps keep the edge's RSS flat.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use polyshop_platform::{config::Settings, telemetry};

use crate::services::Service;

/// Polyshop: an e-commerce backend of gRPC services.
#[derive(Debug, Parser)]
#[command(name = "polyshop", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one service in the foreground until SIGTERM / Ctrl-C.
    Serve {
        /// Which service.
        service: Service,
        /// Stop (SIGTERM) when the parent process dies: set by `up` for its children, so a
        /// killed `up` leaves no orphans.
        #[arg(long, hide = true)]
        supervised: bool,
    },
    /// Run the whole system: a nats-server child and one process per service.
    Up(up::UpArgs),
    /// Operator tasks.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Replace this process with `program`, which gets SIGTERM when the parent dies (how `up`
    /// starts nats-server).
    #[command(hide = true)]
    ExecSupervised {
        /// The program, looked up on PATH.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ExecSupervised { program, args } = &cli.command {
        return exec_supervised(program, args);
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
            Command::ExecSupervised { .. } => Ok(()),
            Command::Admin(command) => admin::run(command, settings).await,
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
