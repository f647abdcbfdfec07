//! Connecting to DynamoDB, or to a local stand-in such as dynalite.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};

/// An SDK client for `endpoint`. Against a local endpoint with no credentials or
/// region configured, dummy credentials and `us-east-1` are used (a local server
/// such as dynalite accepts any). Calls time out quickly so that an outage becomes a 503, not a hang.
pub async fn client(endpoint: &str) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(4))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    let local = !endpoint.contains("amazonaws.com");
    let unset = |var: &str| std::env::var_os(var).is_none();
    if local && unset("AWS_REGION") && unset("AWS_DEFAULT_REGION") && unset("AWS_PROFILE") {
        loader = loader.region(Region::new("us-east-1"));
    }
    if local && unset("AWS_ACCESS_KEY_ID") && unset("AWS_PROFILE") {
        loader = loader.credentials_provider(Credentials::new(
            "dummy",
            "dummy",
            None,
            None,
            "sse-server-local",
        ));
    }
    Client::new(&loader.load().await)
}
