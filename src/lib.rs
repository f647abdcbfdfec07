//! sse-server: Server-Sent Events in four steps.
//!
//! `main` parses the command line and calls [`serve`]. This file builds the shared
//! state ([`AppState`]) and the router; each version's routes live in their own
//! module and share the SSE layer (`sse`) and the message bus (`bus`):
//!
//! * `v1` — a keep-alive stream;
//! * `v2` — per-user channels fed by POSTs;
//! * `v3` — the same channels fed from a Kafka topic (`channels` holds what the
//!   two share over HTTP);
//! * `v4` — a report status board on DynamoDB and Kafka.
//!
//! Across all of them, `auth` decides who may read and post (off unless a key is
//! configured), and `limits` caps open streams and checks usernames.

pub mod auth;
mod backoff;
pub mod bus;
mod channels;
pub mod config;
mod dashboard;
mod drain;
mod error;
mod events;
mod feed;
/// The entry points of `fuzz/` (feature `fuzzing`), over the property checks
/// that live beside each parser; not an API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod idempotency;
mod limits;
mod lock;
mod metrics;
mod presence;
mod server;
pub mod sse;
#[cfg(test)]
mod strategies;
mod user;
mod v1;
mod v2;
mod v3;
pub mod v4;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::CorsLayer;

use crate::auth::{Authorization, Verifier};
use crate::bus::{Bus, KafkaBus, MemoryBus};
use crate::config::Config;
use crate::limits::StreamLimits;
use crate::metrics::Metrics;
use crate::sse::{HubLimits, IdScheme, StreamSettings, Streams, UserHub};
use crate::v4::dynamodb::{self, DynamoStore};
use crate::v4::memory::MemoryStore;
use crate::v4::routes::Quotas;
use crate::v4::store::ReportStore;

/// Request bodies above this are refused with 413.
const BODY_LIMIT: usize = 64 * 1024;
pub use drain::Stop;

/// The router's state: the substates, each handed to the handlers that need it
/// (axum's `FromRef`, below), so no handler reaches more than it uses. Only this
/// file knows the whole. Cloned for every request, hence the one `Arc`.
#[derive(Clone)]
struct AppState(Arc<Substates>);

struct Substates {
    /// The CORS origins, for the router itself.
    cors_origins: Vec<String>,
    static_dir: dashboard::StaticDir,
    metrics: Arc<Metrics>,
    /// The open-stream caps, and `retry:` and keep-alive of the /v2–/v4 streams.
    streams: Streams,
    auth: Authorization,
    v1: v1::Ticker,
    v2: v2::Channel,
    v3: Arc<v3::Channel>,
    v4: Arc<v4::Board>,
    v4_quotas: Quotas,
    presences: presence::Presences,
    probes: health::Probes,
    /// Cancelled on shutdown: ends every stream and consumer.
    shutdown: CancellationToken,
    /// Whether the server drains or stops (for the `Connection: close` layer).
    stop: Stop,
    /// The answers kept for `Idempotency-Key` repeats (a request extension).
    idempotency: Arc<idempotency::Idempotency>,
}

/// `impl FromRef<AppState>` for each substate: a clone of its field.
macro_rules! substates {
    ($($field:ident: $substate:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $substate {
            fn from_ref(app: &AppState) -> $substate {
                app.0.$field.clone()
            }
        })*
    };
}

substates! {
    static_dir: dashboard::StaticDir,
    metrics: Arc<Metrics>,
    streams: Streams,
    auth: Authorization,
    v1: v1::Ticker,
    v2: v2::Channel,
    v3: Arc<v3::Channel>,
    v4: Arc<v4::Board>,
    v4_quotas: Quotas,
    presences: presence::Presences,
    probes: health::Probes,
    stop: Stop,
}

/// Connects the configured backing services (or their in-memory stand-ins) and
/// starts the background readers. Nothing here waits for Kafka: consumers retry
/// until the broker answers, and `/readyz` says when they do.
async fn build_state(config: Config, stop: Stop) -> anyhow::Result<AppState> {
    let shutdown = stop.now.clone();
    let metrics = Arc::new(Metrics::new());
    let hub_limits = HubLimits::from_config(&config);
    if hub_limits.effective_queue() < hub_limits.queue {
        tracing::info!(
            "connection queues hold {} events (half of --history {}), so a client closed for overflow always resumes from the kept history",
            hub_limits.effective_queue(),
            hub_limits.history
        );
    }
    // /v2 is in-process by design; /v3 and /v4 ids come from Kafka positions when
    // Kafka carries them, so every instance can resume them.
    let bus_ids = |on_kafka: bool| {
        if on_kafka {
            IdScheme::Kafka
        } else {
            IdScheme::local()
        }
    };
    // /v4 goes through Kafka only with DynamoDB: its reports in this process's
    // memory are no other instance's, and a writer of the shared group that cannot
    // see the shared table would reject every instance's changes ("the report does
    // not exist"), as a misconfigured test instance did to the nemesis.
    let v4_on_kafka = config.kafka_brokers.is_some() && config.dynamodb_endpoint.is_some();
    let hub = |version, ids| UserHub::new(version, ids, hub_limits.clone(), metrics.clone());
    let (v2, v3, v4) = (
        hub("v2", IdScheme::local()),
        hub("v3", bus_ids(config.kafka_brokers.is_some())),
        hub("v4", bus_ids(v4_on_kafka)),
    );
    let bus = match &config.kafka_brokers {
        Some(brokers) => Bus::Kafka(Arc::new(KafkaBus::new(brokers, config.topics())?)),
        None => Bus::Memory(MemoryBus::default()),
    };
    let v4_bus = if v4_on_kafka {
        bus.clone()
    } else {
        if config.kafka_brokers.is_some() {
            tracing::warn!(
                "Kafka without DynamoDB: /v4 keeps its reports in memory and its commands and facts in this process (single instance); give --dynamodb-endpoint to share /v4 across instances"
            );
        }
        Bus::Memory(MemoryBus::default())
    };
    bus.watch_writability(metrics.clone(), shutdown.clone());
    let store: Arc<dyn ReportStore> = match &config.dynamodb_endpoint {
        Some(endpoint) => {
            let client = dynamodb::client(endpoint).await;
            match dynamodb::create_table(&client, &config.table, false).await {
                Ok(true) => tracing::info!(table = config.table, "created the DynamoDB table"),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    "cannot check or create table {} (is DynamoDB up?): {e}",
                    config.table
                ),
            }
            Arc::new(DynamoStore::new(
                client,
                config.table.clone(),
                metrics.clone(),
            ))
        }
        None => Arc::new(MemoryStore::default()),
    };
    tracing::info!(
        "message bus: {}; report store: {}",
        config.kafka_brokers.as_deref().map_or(
            "in-process (embedded, single instance)".to_owned(),
            |b| format!("Kafka at {b}")
        ),
        config.dynamodb_endpoint.as_deref().map_or(
            "in memory (embedded, lost on restart)".to_owned(),
            |e| format!("DynamoDB at {e}")
        ),
    );
    let auth = Verifier::new(
        config.auth_secret.as_ref(),
        config.auth_public_key.as_deref(),
        config.auth_audience.as_deref(),
    )?;
    match &auth {
        None => tracing::warn!(
            "authorization is off (no --auth-secret or --auth-public-key): anyone may read any stream and post to any user"
        ),
        Some(verifier) => tracing::info!(
            "authorization is on: every API route needs a token signed with {:?}",
            verifier.algorithm()
        ),
    }
    let max_streams = config
        .max_streams
        .map_or_else(limits::default_max_streams, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    let max_per_user = usize::try_from(config.max_streams_per_user).unwrap_or(usize::MAX);
    tracing::info!(max_streams, max_per_user, "open stream limits");
    let limits = StreamLimits::new(max_streams, max_per_user);
    let v1 = v1::Ticker {
        every: config.v1_tick(),
        keep_alive: config.v1_keep_alive(),
        metrics: metrics.clone(),
    };
    let instance: Arc<str> = Arc::from(uuid::Uuid::new_v4().simple().to_string());
    let presences = presence::Presences {
        v2: presence::Presence::start("v2", &v2, &instance, &shutdown),
        v3: presence::Presence::start("v3", &v3, &instance, &shutdown),
        v4: presence::Presence::start("v4", &v4, &instance, &shutdown),
    };
    // /v2's presence is this instance's; /v3's and /v4's go where their records do.
    let shared = |bus: &Bus, steps: &[Arc<presence::Presence>]| {
        presence::share(bus, &config.presence_topic, steps, &metrics, &shutdown);
    };
    if v4_on_kafka {
        shared(&bus, &[presences.v3.clone(), presences.v4.clone()]);
    } else {
        shared(&bus, std::slice::from_ref(&presences.v3));
        shared(&v4_bus, std::slice::from_ref(&presences.v4));
    }
    let v3 = Arc::new(v3::Channel {
        hub: v3,
        bus: bus.clone(),
        topic: config.v3_topic.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        history_window: config.history_window,
        repeats: Default::default(),
    });
    let v4 = Arc::new(v4::Board {
        bus: v4_bus,
        store: store.clone(),
        hub: v4,
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        command_topic: config.v4_command_topic.clone(),
        event_topic: config.v4_event_topic.clone(),
        writers_group: config.v4_writers_group.clone(),
        history_window: config.history_window,
    });
    let v4_quotas = Quotas {
        max_reports: usize::try_from(config.max_reports_per_user).unwrap_or(usize::MAX),
        prelude_bytes: hub_limits.queue_bytes,
    };
    let app = AppState(Arc::new(Substates {
        streams: Streams {
            limits,
            settings: StreamSettings {
                retry: config.retry,
                keep_alive: config.stream_keep_alive(),
                shutdown: shutdown.clone(),
            },
        },
        cors_origins: config.cors_origins,
        static_dir: dashboard::StaticDir(config.static_dir),
        metrics,
        auth: Authorization(auth.map(Arc::new)),
        v1,
        v2: v2::Channel(v2),
        v3,
        v4,
        v4_quotas,
        presences,
        probes: health::Probes {
            bus,
            store,
            stop: stop.clone(),
        },
        shutdown,
        stop,
        idempotency: Arc::new(idempotency::Idempotency::new(
            config.idempotency_window,
            usize::try_from(config.idempotency_bytes.as_u64()).unwrap_or(usize::MAX),
        )),
    }));
    v3::start_consumer(&app.0.v3);
    v4::start(&app.0.v4);
    start_history_eviction(&app);
    end_streams_on_shutdown(&app);
    Ok(app)
}

impl Substates {
    fn hubs(&self) -> [&Arc<UserHub>; 3] {
        [&self.v2.0, &self.v3.hub, &self.v4.hub]
    }
}

/// Streams end when their source ends: on shutdown the hubs drop every queue.
fn end_streams_on_shutdown(app: &AppState) {
    let app = app.clone();
    tokio::spawn(async move {
        app.0.shutdown.cancelled().await;
        for hub in app.0.hubs() {
            hub.close_all();
        }
    });
}

/// Drops kept events once they are older than `--history-window`, and keeps the
/// reader lag gauges current.
fn start_history_eviction(app: &AppState) {
    let app = app.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = app.0.shutdown.cancelled() => return,
            }
            for hub in app.0.hubs() {
                hub.evict();
            }
            app.0.probes.bus.update_lag_gauges();
        }
    });
}

/// The routes whose responses are event streams: the transport answers these on
/// its stream path (`server`), everything else through hyper.
pub const STREAM_PATHS: [&str; 4] = [
    v1::STREAM_PATH,
    v2::STREAM_PATH,
    v3::STREAM_PATH,
    v4::routes::STREAM_PATH,
];

/// The whole HTTP application.
fn router(app: AppState) -> Router {
    // Every API route needs a token when authorization is on; health, metrics,
    // the session routes and the dashboard's files do not.
    let api = Router::new()
        .merge(v1::routes())
        .merge(v2::routes())
        .merge(v3::routes())
        .merge(v4::routes::routes())
        .merge(presence::routes())
        .route_layer(middleware::from_fn_with_state(
            app.0.auth.clone(),
            auth::identify,
        ));
    let mut router = Router::new()
        .merge(api)
        .merge(auth::session::routes())
        .merge(health::routes())
        .fallback(dashboard::dashboard)
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(
            app.0.metrics.clone(),
            metrics::count_requests,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(Extension(app.0.idempotency.clone()))
        .layer(middleware::from_fn_with_state(
            app.0.stop.clone(),
            drain::close_connections,
        ));
    if !app.0.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = app
            .0
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static("last-event-id"),
                    idempotency::HEADER,
                ]),
        );
    }
    router.with_state(app)
}

/// The connection caps, deadlines and TLS of `config`.
fn server_settings(config: &Config) -> anyhow::Result<server::ServerSettings> {
    let max_connections = config
        .max_connections
        .map_or_else(limits::default_max_connections, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    let max_waiting = config
        .max_waiting_connections
        .map_or(max_connections / 4, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        })
        .max(1);
    tracing::info!(max_connections, max_waiting, "open connection limits");
    Ok(server::ServerSettings {
        socket: server::SocketSettings {
            deadlines: Arc::new(server::Deadlines {
                header: config.header_timeout,
                body: config.body_timeout,
                idle: config.idle_timeout,
                write: config.write_timeout,
            }),
            waiting: server::Waiting::new(max_waiting),
        },
        max_connections,
        stream_paths: &STREAM_PATHS,
        tls: match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
            _ => None,
        },
    })
}

/// Serves until `stop` says so: after a drain of `--drain-grace` (SIGTERM), or
/// at once; then gives open connections [`drain::EXIT_WITHIN`] to end
/// (src/drain.rs has the whole sequence).
pub async fn serve(listener: TcpListener, config: Config, stop: Stop) -> anyhow::Result<()> {
    let settings = server_settings(&config)?;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let grace = config.drain_grace;
    let app = build_state(config, stop.clone()).await?;
    tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
    let server = tokio::spawn(server::run(
        listener,
        router(app),
        settings,
        stop.now.clone(),
    ));
    tokio::spawn(stop.clone().drain_then_stop(grace));
    stop.now.cancelled().await;
    match tokio::time::timeout(drain::EXIT_WITHIN, server).await {
        Ok(result) => {
            result?;
            tracing::info!("every connection ended; exiting");
        }
        Err(_) => tracing::warn!(
            "connections still open {:?} after the stop; exiting anyway",
            drain::EXIT_WITHIN
        ),
    }
    Ok(())
}
