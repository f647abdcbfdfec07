//! The `sse-server` binary: parse the command line, set up logging, and run the
//! chosen command. Everything else lives in the library so tests can run it.

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use sse_server::Stop;
use sse_server::config::{Cli, Command, LogFormat};

/// jemalloc, with a background thread purging pages unused for a second, returns
/// the memory of closed connections to the OS within seconds; glibc malloc keeps
/// it, so RSS would stay at its peak (measured in docs/BENCHMARKS.md).
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start-up.
#[cfg(all(unix, not(target_env = "musl")))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static JEMALLOC_OPTIONS: &[u8; 63] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

/// Logs to standard output at the `SSE_LOG` filter (default `info`): colour only
/// when it is a terminal and `NO_COLOR` is unset, so a file or a journal gets plain
/// text; one JSON object per line with `--log-format json`.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = std::env::var("SSE_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init();
        }
    }
}

fn main() -> anyhow::Result<()> {
    // Before the runtime starts a thread: it may set environment variables.
    sse_server::config::accept_old_environment();
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.config.log_format);
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            raise_open_files_limit();
            let listener = TcpListener::bind(config.bind).await?;
            let stop = Stop::default();
            tokio::spawn(stop_on_signals(stop.clone()));
            sse_server::serve(listener, config, stop).await
        }
        Command::Init => {
            anyhow::ensure!(
                config.kafka_brokers.is_some() || config.dynamodb_endpoint.is_some(),
                "`init` creates the topics on --kafka-brokers and the table on --dynamodb-endpoint (or SSE_KAFKA_BROKERS / SSE_DYNAMODB_ENDPOINT): give at least one, before `init`"
            );
            if let Some(brokers) = &config.kafka_brokers {
                let bus = sse_server::bus::KafkaBus::new(brokers, config.topics())?;
                for topic in bus.create_all_topics().await? {
                    let state = if topic.created {
                        "created"
                    } else {
                        "already exists"
                    };
                    println!(
                        "topic {} ({} partitions, {} replicas, min.insync.replicas={}) {state} at {brokers}",
                        topic.name, topic.partitions, topic.replicas, topic.min_insync
                    );
                    for warning in topic.warnings() {
                        println!("WARNING: {warning}");
                    }
                }
            }
            if let Some(endpoint) = &config.dynamodb_endpoint {
                let client = sse_server::v4::dynamodb::client(endpoint).await;
                let created =
                    sse_server::v4::dynamodb::create_table(&client, &config.table, false).await?;
                println!(
                    "table {} {} at {endpoint}",
                    config.table,
                    if created { "created" } else { "already exists" }
                );
            }
            Ok(())
        }
        Command::InitTable { recreate } => {
            let endpoint = config
                .dynamodb_endpoint
                .unwrap_or_else(|| "http://localhost:8111".to_owned());
            let client = sse_server::v4::dynamodb::client(&endpoint).await;
            let created =
                sse_server::v4::dynamodb::create_table(&client, &config.table, recreate).await?;
            println!(
                "table {} {} at {endpoint}",
                config.table,
                if created { "created" } else { "already exists" }
            );
            Ok(())
        }
        Command::Produce { topic, key } => {
            let brokers = config
                .kafka_brokers
                .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
            let failed = sse_server::bus::produce_lines(&brokers, &topic, key.as_deref()).await?;
            anyhow::ensure!(failed == 0, "{failed} record(s) were not delivered");
            Ok(())
        }
        Command::Token { sub, publish, ttl } => {
            let secret = config.auth_secret.context(
                "`token` signs with the server's secret: set SSE_AUTH_SECRET (or --auth-secret before `token`). With --auth-public-key, tokens come from whoever holds the private key",
            )?;
            println!("{}", sse_server::auth::mint(&secret, &sub, publish, ttl)?);
            Ok(())
        }
    }
}

/// Each stream holds a socket: lift the soft open-files limit to the hard one.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}

/// SIGINT (Ctrl-C) or SIGTERM: drain, then stop (src/drain.rs); a second one:
/// stop now.
async fn stop_on_signals(stop: Stop) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            stop.now.cancel();
            return;
        }
    };
    for token in [&stop.drain, &stop.now] {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        token.cancel();
    }
}
