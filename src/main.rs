//! The `raftsched` binary: run a node, or talk to a cluster.

mod cli;

use std::process::ExitCode;

/// A node frees as much as it allocates for as long as it runs (tasks in, purged out, a
/// snapshot image per snapshot). glibc's malloc kept the freed memory (RSS rising for
/// minutes past the state's bounded size, ~200 MB of it returned by `malloc_trim`);
/// mimalloc gives freed pages back to the OS, so RSS follows what the node holds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse_with_long_version();
    if args.is_short_lived() {
        // Only for commands that print and exit: a server must survive a peer closing a
        // socket mid-write, which SIGPIPE would turn into a silent death.
        restore_default_sigpipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = args.format();
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if format != cli::output::Format::Table => {
            let error = serde_json::json!({"error": {"code": grpc_code(&e), "message": error_chain(&e)}});
            match format {
                cli::output::Format::Yaml => eprint!("{}", cli::output::render(&error, format)),
                // One line, for json too: a script reads stderr's last line.
                _ => eprintln!("{error}"),
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The gRPC code of a failed call as gRPC names it (`INVALID_ARGUMENT`), for `--json`
/// errors; None for an error before any call (a bad flag, no credentials).
fn grpc_code(error: &anyhow::Error) -> Option<&'static str> {
    use raftsched_client::ClientError;
    match error.downcast_ref::<ClientError>()? {
        ClientError::Unavailable { .. } | ClientError::Refused { .. } => Some("UNAVAILABLE"),
        other => other.code().map(raftsched_client::ErrorCode::as_str),
    }
}

/// The error and its causes, skipping a cause whose text the message already carries (our
/// error types often embed their source in their own message).
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message
}

/// Rust ignores SIGPIPE, so `raftsched task list | head` would panic on the closed pipe;
/// a command-line tool should just stop, like any other.
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
