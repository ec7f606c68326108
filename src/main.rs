use clap::Parser;

// mimalloc: the checker allocates and frees millions of small strings across threads (parsed on
// workers, dropped on the main thread); glibc's arenas make that slower and fatter.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let stderr_filter = tracing_subscriber::EnvFilter::try_from_env("ACKCHECK_LOG")
        .unwrap_or_else(|_| "warn,pulsar=off,lapin=off".into());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(stderr_filter),
        )
        .with(ackcheck::runner::WarningsToRunLog::layer())
        .init();
    let cli = ackcheck::cli::Cli::parse();
    match ackcheck::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(ackcheck::cli::exit_code_of(&e));
        }
    }
}
