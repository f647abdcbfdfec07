//! Command line and environment: every knob of the server (the README's "Flags" table).
//!
//! Each flag also reads an `SSE_*` environment variable so the same binary can be
//! configured by a shell, a systemd unit or a container without a wrapper script.
//!
//! A leaf of the module graph: it imports nothing else of the server, so every
//! module may read its configuration without a cycle. The types the flags parse
//! into live here too ([`Secret`], the HS256 key); the modules that use a setting
//! take it through their own constructors (`Verifier::new`, `HubLimits::from_config`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sse-server",
    version,
    about = "Server-Sent Events in four steps"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every route (the default when no subcommand is given).
    Serve,
    /// Create what is missing of the server's Kafka topics (with their partitions,
    /// against `--kafka-brokers`) and of its DynamoDB table (against
    /// `--dynamodb-endpoint`), as the server itself does at start-up.
    Init,
    /// Create the DynamoDB table and its `UserIdIndex` (against `--dynamodb-endpoint`).
    InitTable {
        /// Delete the table first when it exists.
        #[arg(long)]
        recreate: bool,
    },
    /// Send each line of standard input as one record to a Kafka topic.
    Produce {
        /// Topic to write to, e.g. `v3_messages`.
        topic: String,
        /// Optional record key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print a token for SUB signed with `--auth-secret` / `SSE_AUTH_SECRET`.
    Token {
        /// Whom the token is for: a username (/v1–/v3) or a user id (UUID, /v4).
        sub: String,
        /// Let the token post to any user and broadcast (scope `publish`).
        #[arg(long)]
        publish: bool,
        /// How long the token is valid, e.g. `90s`, `10m`, `1h`, `7d`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// Everything the server needs to start. `Default` is the embedded setup tests use.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Log lines as plain text (colour only on a terminal, and never with
    /// `NO_COLOR` set) or one JSON object per line, for a log collector.
    #[arg(long, env = "SSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address to listen on.
    #[arg(long, env = "SSE_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) instead of
    /// plain HTTP. Needs `--tls-key`.
    #[arg(long, env = "SSE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SSE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Kafka bootstrap servers; without it an in-process bus is used.
    #[arg(long, env = "SSE_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Replicas of each partition of the topics the server creates; default:
    /// 3, or as many as the cluster has brokers when it has fewer.
    #[arg(long, env = "SSE_KAFKA_REPLICAS", value_parser = clap::value_parser!(i32).range(1..))]
    pub kafka_replicas: Option<i32>,

    /// DynamoDB endpoint; without it reports live in memory.
    #[arg(long, env = "SSE_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,

    /// DynamoDB table for /v4 reports.
    #[arg(long, env = "SSE_TABLE", default_value = "report_status")]
    pub table: String,

    /// Topic read (and written) by /v3.
    #[arg(long, env = "SSE_V3_TOPIC", default_value = "v3_messages")]
    pub v3_topic: String,

    /// Topic carrying /v4 status-change commands.
    #[arg(long, env = "SSE_V4_COMMAND_TOPIC", default_value = "v4_messages")]
    pub v4_command_topic: String,

    /// Topic carrying /v4 facts (what happened) to every instance.
    #[arg(long, env = "SSE_V4_EVENT_TOPIC", default_value = "v4_events")]
    pub v4_event_topic: String,

    /// Topic carrying every instance's presence snapshots (/v3 and /v4).
    #[arg(long, env = "SSE_PRESENCE_TOPIC", default_value = "presence")]
    pub presence_topic: String,

    /// Consumer group shared by the /v4 writers of every instance.
    #[arg(
        long,
        env = "SSE_V4_WRITERS_GROUP",
        default_value = "sse-server-v4-writers"
    )]
    pub v4_writers_group: String,

    /// Keep-alive comment interval for /v2../v4 (v1 uses 3 s unless this is set).
    /// Also `--keep-alive-ms` / `SSE_KEEP_ALIVE_MS` (a bare number is milliseconds).
    #[arg(long, alias = "keep-alive-ms", env = "SSE_KEEP_ALIVE", value_parser = duration_or_ms)]
    pub keep_alive: Option<Duration>,

    /// Interval between two `hi!` on /v1. Also `--v1-interval-ms`.
    #[arg(long, alias = "v1-interval-ms", env = "SSE_V1_INTERVAL", default_value = "15s", value_parser = duration_or_ms)]
    pub v1_interval: Duration,

    /// Reconnect delay suggested to browsers (`retry:` field). Also `--retry-ms`.
    #[arg(long, alias = "retry-ms", env = "SSE_RETRY", default_value = "2s", value_parser = duration_or_ms)]
    pub retry: Duration,

    /// Events kept per user for `Last-Event-ID` resume.
    #[arg(long, env = "SSE_HISTORY", default_value_t = 1_000)]
    pub history: usize,

    /// How far back every instance keeps every user's events (e.g. `10m`, `90s`).
    #[arg(long, env = "SSE_HISTORY_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub history_window: Duration,

    /// Memory all kept events may use together (e.g. `256MiB`).
    #[arg(long, env = "SSE_HISTORY_BYTES", default_value = "256MiB")]
    pub history_bytes: bytesize::ByteSize,

    /// Events queued per connection before it is closed as too slow (at most half
    /// of `--history`, so an overflowing client can always resume without a gap).
    #[arg(long, env = "SSE_QUEUE", default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,

    /// Bytes queued per connection before it is closed as too slow.
    #[arg(long, env = "SSE_QUEUE_BYTES", default_value = "1MiB")]
    pub queue_bytes: bytesize::ByteSize,

    /// Origins allowed by CORS (repeatable); none means same origin only.
    #[arg(long = "cors-origin", env = "SSE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// HMAC secret tokens are signed with (HS256); turns authorization on.
    #[arg(
        long,
        env = "SSE_AUTH_SECRET",
        hide_env_values = true,
        conflicts_with = "auth_public_key"
    )]
    pub auth_secret: Option<Secret>,

    /// PEM file with the public key tokens are signed with (RS256, ES256 or EdDSA,
    /// from the key's type); turns authorization on.
    #[arg(long, env = "SSE_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,

    /// Audience tokens must name in `aud`; without it `aud` is not checked.
    #[arg(long, env = "SSE_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,

    /// Open streams in all; default: the open-files limit minus 256.
    #[arg(long, env = "SSE_MAX_STREAMS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_streams: Option<u64>,

    /// Open streams of one user.
    #[arg(long, env = "SSE_MAX_STREAMS_PER_USER", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_streams_per_user: u64,

    /// Open connections of any kind; past it a new connection gets a fast 503.
    /// Default: the open-files limit minus 128 (left for the backing services).
    #[arg(long, env = "SSE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Connections waiting for a request (none sent yet, or idle between two);
    /// past it the one waiting longest is closed. Default: a quarter of
    /// `--max-connections`.
    #[arg(long, env = "SSE_MAX_WAITING_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_waiting_connections: Option<u64>,

    /// A whole request head must arrive within this, from its first byte (from the
    /// accept for a connection's first request).
    #[arg(long, env = "SSE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// A whole request body must arrive within this, from the end of its head.
    #[arg(long, env = "SSE_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// A keep-alive connection with no request in progress is closed after this.
    #[arg(long, env = "SSE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// A connection whose socket takes no byte for this long while data waits is
    /// closed (a stream's client then resumes by id, as after an overflow).
    #[arg(long, env = "SSE_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// /v4 reports one user may have; creating one more is refused (409), and
    /// `GET /v4/reports` and the stream's snapshot never hold more.
    #[arg(long, env = "SSE_MAX_REPORTS_PER_USER", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_reports_per_user: u64,

    /// How long an `Idempotency-Key` is remembered (its first answer replayed).
    #[arg(long, env = "SSE_IDEMPOTENCY_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,

    /// Memory the remembered answers of `Idempotency-Key` requests may use; past
    /// it the oldest are forgotten.
    #[arg(long, env = "SSE_IDEMPOTENCY_BYTES", default_value = "32MiB")]
    pub idempotency_bytes: bytesize::ByteSize,

    /// After SIGTERM, how long the server keeps serving while `/readyz` answers
    /// 503, so proxies move traffic away before it stops accepting (src/drain.rs).
    #[arg(long, env = "SSE_DRAIN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_grace: Duration,

    /// Directory with the built dashboard (`frontend/dist`), served at `/`.
    #[arg(long, env = "SSE_STATIC_DIR", default_value = "frontend/dist")]
    pub static_dir: PathBuf,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A Kafka topic of the server, and the partitions and replicas it is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub partitions: i32,
    /// `--kafka-replicas`; `None`: [`REPLICAS`], or fewer on a smaller cluster.
    pub replicas: Option<i32>,
    /// How long its records are kept; `None`: the broker's default (a week).
    pub retention: Option<Duration>,
}

impl Topic {
    /// The replicas each partition should have on a cluster of `brokers`.
    pub fn replicas_on(&self, brokers: i32) -> i32 {
        self.replicas.unwrap_or(REPLICAS.min(brokers.max(1)))
    }
}

/// Partitions of every topic the server creates. Every record is keyed (/v3
/// messages and /v4 facts by user, /v4 commands by report), so one key's records
/// keep their order on one partition. The instances share the command topic's
/// partitions between them (one consumer group, one writer per report); the other
/// two every instance reads whole, and an event id names a position in each
/// partition, so resume works the same on one partition or many.
pub const PARTITIONS: i32 = 3;

/// How long the presence topic keeps its snapshots: only the last seconds are
/// ever read, the rest is kept for whoever debugs it.
pub const PRESENCE_RETENTION: Duration = Duration::from_secs(3600);

/// Copies of every partition, on as many brokers, unless `--kafka-replicas` says
/// otherwise (fewer on a cluster with fewer brokers). With three copies and the
/// brokers' `min.insync.replicas=2`, an acknowledged record is on two brokers at
/// least, and one broker may die, hang or be cut off while every partition still
/// takes writes (docs/deploy.md, docs/RELIABILITY.md).
pub const REPLICAS: i32 = 3;

impl Config {
    /// Every Kafka topic the server uses, with its partitions and replicas. This is the one
    /// definition: the server creates what is missing at start-up, `sse-server init`
    /// does the same for `scripts/services.sh`, and `docker-compose.yml` leaves it
    /// to them.
    pub fn topics(&self) -> Vec<Topic> {
        let topic = |name: &String, retention| Topic {
            name: name.clone(),
            partitions: PARTITIONS,
            replicas: self.kafka_replicas,
            retention,
        };
        vec![
            topic(&self.v3_topic, None),
            topic(&self.v4_command_topic, None),
            topic(&self.v4_event_topic, None),
            // A snapshot is stale seconds after it is written (src/presence).
            topic(&self.presence_topic, Some(PRESENCE_RETENTION)),
        ]
    }

    /// Keep-alive interval for /v2, /v3 and /v4 streams (a zero one would spin).
    pub fn stream_keep_alive(&self) -> Duration {
        at_least_1ms(self.keep_alive.unwrap_or(Duration::from_secs(15)))
    }

    /// Interval between two `hi!` on /v1.
    pub fn v1_tick(&self) -> Duration {
        at_least_1ms(self.v1_interval)
    }

    /// Keep-alive interval for /v1, whose default is shorter to show the comments.
    pub fn v1_keep_alive(&self) -> Duration {
        at_least_1ms(self.keep_alive.unwrap_or(Duration::from_secs(3)))
    }
}

impl Default for Config {
    /// Every flag's default, whatever the environment says: the `SSE_*` variables
    /// are read by the command line alone (`Cli::parse` in `main`), so a test or an
    /// embedding never depends on the shell it runs in.
    fn default() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command.get_matches_from(["sse-server"]);
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => cli.config,
            Err(e) => unreachable!("the flags' defaults always parse: {e}"),
        }
    }
}

fn at_least_1ms(interval: Duration) -> Duration {
    interval.max(Duration::from_millis(1))
}

/// A duration as every duration flag takes it (`500ms`, `2s`, `10m`), or a bare
/// number of milliseconds: the spelling of the flags that were named `--*-ms`.
fn duration_or_ms(value: &str) -> Result<Duration, String> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse()
            .map(Duration::from_millis)
            .map_err(|e| format!("{value}: {e}"));
    }
    humantime::parse_duration(value).map_err(|e| format!("{value}: {e}"))
}

/// The environment variables of the flags renamed to one unit style, read when
/// the new name is not set: `SSE_RETRY_MS=2000` still works.
pub fn accept_old_environment() {
    for (old, new) in [
        ("SSE_KEEP_ALIVE_MS", "SSE_KEEP_ALIVE"),
        ("SSE_V1_INTERVAL_MS", "SSE_V1_INTERVAL"),
        ("SSE_RETRY_MS", "SSE_RETRY"),
    ] {
        if std::env::var_os(new).is_none()
            && let Some(value) = std::env::var_os(old)
        {
            // SAFETY: called first thing in `main`, before any other thread runs.
            unsafe { std::env::set_var(new, value) };
        }
    }
}

/// The shortest HS256 secret accepted, in bytes: RFC 7518 §3.2 requires a key at
/// least as long as the hash output, 256 bits for HS256.
pub const MIN_SECRET_BYTES: usize = 32;

/// An HMAC secret: kept out of `Debug` output (the config is logged in tests). Only
/// [`FromStr`] makes one, so every `Secret` is at least [`MIN_SECRET_BYTES`] long:
/// the server refuses a short one at start-up and `sse-server token` will not mint
/// with it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The key's bytes, for signing and verifying.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Secret, String> {
        if s.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the HS256 secret (--auth-secret / SSE_AUTH_SECRET) is {} bytes; it must be at least {MIN_SECRET_BYTES} bytes (256 bits), since RFC 7518 §3.2 requires an HS256 key at least as long as the hash output. Make one with `openssl rand -hex 32`",
                s.len()
            ));
        }
        Ok(Secret(s.to_owned()))
    }
}

/// How clap reads a [`Secret`] (picked up by `value_parser!`, so by the derive): as
/// [`FromStr`], but a refusal does not echo the value, which clap's own
/// "invalid value '…'" error would print to the terminal or the log.
#[derive(Clone, Copy, Debug)]
pub struct SecretParser;

impl clap::builder::TypedValueParser for SecretParser {
    type Value = Secret;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Secret, clap::Error> {
        let refuse =
            |kind, message: String| clap::Error::raw(kind, format!("{message}\n")).with_cmd(cmd);
        let text = value.to_str().ok_or_else(|| {
            refuse(
                clap::error::ErrorKind::InvalidUtf8,
                "the HS256 secret (--auth-secret / SSE_AUTH_SECRET) is not UTF-8 text. Make one with `openssl rand -hex 32`".to_owned(),
            )
        })?;
        text.parse()
            .map_err(|e| refuse(clap::error::ErrorKind::ValueValidation, e))
    }
}

impl clap::builder::ValueParserFactory for Secret {
    type Parser = SecretParser;

    fn value_parser() -> SecretParser {
        SecretParser
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 32 bytes: the shortest secret accepted.
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn duration_flags_take_units_and_their_old_milliseconds_spelling() {
        let parse = |args: &[&str]| {
            let mut all = vec!["sse-server"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).expect("parses").config
        };
        let defaults = parse(&[]);
        assert_eq!(defaults.retry, Duration::from_secs(2));
        assert_eq!(defaults.v1_interval, Duration::from_secs(15));
        assert_eq!(defaults.keep_alive, None);
        let new = parse(&[
            "--retry",
            "1500ms",
            "--v1-interval",
            "3s",
            "--keep-alive",
            "1m",
        ]);
        let old = parse(&[
            "--retry-ms",
            "1500",
            "--v1-interval-ms",
            "3000",
            "--keep-alive-ms",
            "60000",
        ]);
        for config in [new, old] {
            assert_eq!(config.retry, Duration::from_millis(1500));
            assert_eq!(config.v1_interval, Duration::from_secs(3));
            assert_eq!(config.keep_alive, Some(Duration::from_secs(60)));
        }
        assert!(Cli::try_parse_from(["sse-server", "--retry", "soon"]).is_err());
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused_with_the_reason() {
        assert_eq!(SECRET.len(), MIN_SECRET_BYTES);
        assert!(SECRET.parse::<Secret>().is_ok(), "32 bytes");
        for short in ["", "s3cret", &SECRET[..31]] {
            let error = short.parse::<Secret>().expect_err("refused");
            assert!(
                error.contains(&format!("is {} bytes", short.len())),
                "{error}"
            );
            assert!(error.contains("RFC 7518 §3.2"), "{error}");
            assert!(error.contains("256 bits"), "{error}");
            assert!(error.contains("openssl rand -hex 32"), "{error}");
        }
        // Bytes, not characters: 11 three-byte characters are 33 bytes.
        assert!("€€€€€€€€€€€".parse::<Secret>().is_ok());
    }

    #[test]
    fn the_command_line_refuses_a_short_secret_without_echoing_it() {
        use clap::Parser as _;
        let short = &SECRET[..31];
        let error = Cli::try_parse_from(["sse-server", "--auth-secret", short])
            .expect_err("refused")
            .to_string();
        assert!(error.contains("RFC 7518 §3.2"), "{error}");
        assert!(error.contains("openssl rand -hex 32"), "{error}");
        assert!(!error.contains(short), "{error}");
        let cli = Cli::try_parse_from(["sse-server", "--auth-secret", SECRET])
            .expect("32 bytes are accepted");
        assert!(cli.config.auth_secret.is_some());
    }
}
