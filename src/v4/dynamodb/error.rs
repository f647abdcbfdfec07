//! Errors are classified ([`StoreError`]): `ResourceNotFoundException`, access
//! denied, validation errors and items this server cannot read are permanent;
//! anything else (unreachable, timeouts, throttling) is transient.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::DynamoStore;
use crate::v4::store::{Permanent, StoreError};

impl DynamoStore {
    /// Counts, logs and classifies a failed call.
    pub(super) fn fail<E, R>(&self, what: &str, e: SdkError<E, R>) -> StoreError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug + 'static,
    {
        self.metrics.count_dynamodb_error();
        let permanent = match &e {
            SdkError::ServiceError(service) => permanent_kind(service.err().code()),
            _ => None,
        };
        let detail = format!("DynamoDB {what} failed: {}", DisplayErrorContext(&e));
        tracing::warn!("{detail}");
        match permanent {
            Some(kind) => StoreError::Permanent { kind, detail },
            None => StoreError::Unavailable(detail),
        }
    }
}

/// The permanent failures among DynamoDB's error codes; `None`: worth retrying.
fn permanent_kind(code: Option<&str>) -> Option<Permanent> {
    match code? {
        "ResourceNotFoundException" => Some(Permanent::MissingTable),
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "MissingAuthenticationTokenException"
        | "InvalidSignatureException" => Some(Permanent::AccessDenied),
        "ValidationException" => Some(Permanent::InvalidRequest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_that_no_retry_can_fix_are_permanent() {
        assert_eq!(
            permanent_kind(Some("ResourceNotFoundException")),
            Some(Permanent::MissingTable)
        );
        assert_eq!(
            permanent_kind(Some("AccessDeniedException")),
            Some(Permanent::AccessDenied)
        );
        assert_eq!(permanent_kind(Some("ThrottlingException")), None);
        assert_eq!(
            permanent_kind(Some("ProvisionedThroughputExceededException")),
            None
        );
        assert_eq!(permanent_kind(None), None);
    }
}
