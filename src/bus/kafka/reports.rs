//! librdkafka's own reports: at `debug`, but for the few that mean something is
//! broken for good.
//!
//! While a broker is away librdkafka reports every failed connection, timed-out
//! request and transport error, several lines a second for as long as the outage
//! lasts (1,500 lines in a 15-minute fault run). What an operator needs is logged
//! once per change instead: a partition that stops or starts taking writes and
//! the cluster not answering (`writable`), a reader whose consumer fails and
//! recovers (`reader`), a producer replaced (`producer`).

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// The server's consumers.
pub(super) type KafkaConsumer = rdkafka::consumer::StreamConsumer<Reports>;

/// The context of the server's consumers and admin clients (the producer has its
/// own, `producer::Acknowledgements`, which reports the same way).
pub(super) struct Reports;

impl ClientContext for Reports {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

impl ConsumerContext for Reports {}

/// One librdkafka log line: `error` only at its critical levels.
pub(super) fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
            tracing::error!(target: "librdkafka", "{fac} {message}");
        }
        _ => tracing::debug!(target: "librdkafka", "{fac} {level:?} {message}"),
    }
}

/// A client-wide error: a transport failure is the outage itself (logged once by
/// `writable`); a fatal one replaces the producer, which logs it.
pub(super) fn client_error(error: &KafkaError, reason: &str) {
    tracing::debug!(target: "librdkafka", "client error {error}: {reason}");
}
