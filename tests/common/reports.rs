//! The tests' /v4 client: creates, changes and lists a user's reports on one
//! instance, as any HTTP client would.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{PATIENCE, eventually};

pub struct Reports {
    base: String,
    http: reqwest::Client,
}

impl Reports {
    /// The client of the instance at `base` (`http://127.0.0.1:PORT`).
    pub fn on(base: &str) -> Reports {
        Reports {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `POST /v4/new/report`, asserting 201; the report. A 503 (DynamoDB still
    /// warming up on a loaded machine) is retried, as a client should.
    pub async fn create(&self, user: Uuid) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let reply = loop {
            let reply = self
                .http
                .post(format!("{}/v4/new/report?user_id={user}", self.base))
                .send()
                .await
                .expect("POST /v4/new/report");
            if reply.status() != 503 || tokio::time::Instant::now() > deadline {
                break reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        assert_eq!(reply.status(), 201);
        reply.json().await.expect("report JSON")
    }

    /// Like [`Reports::create`]; the report's id.
    pub async fn create_id(&self, user: Uuid) -> String {
        let report = self.create(user).await;
        report["reportId"].as_str().expect("reportId").to_owned()
    }

    /// `PUT /v4/report`: the status code and the JSON answer.
    pub async fn put(&self, user: Uuid, report: &str, status: &str) -> (u16, Value) {
        let reply = self
            .http
            .put(format!("{}/v4/report?user_id={user}", self.base))
            .json(&json!({ "id": report, "status": status }))
            .send()
            .await
            .expect("PUT /v4/report");
        let code = reply.status().as_u16();
        (code, reply.json().await.expect("JSON answer"))
    }

    /// A change that must be accepted (202); its command id.
    pub async fn change(&self, user: Uuid, report: &str, status: &str) -> String {
        let (code, body) = self.put(user, report, status).await;
        assert_eq!(code, 202, "PUT {report} → {status}: {body}");
        body["commandId"].as_str().expect("commandId").to_owned()
    }

    /// A change accepted and then stored: waits until the list shows it.
    pub async fn move_to(&self, user: Uuid, report: &str, status: &str) {
        self.change(user, report, status).await;
        eventually(&format!("{report} to become {status}"), || async {
            self.status_of(user, report).await == status
        })
        .await;
    }

    /// `GET /v4/reports`, asserting 200.
    pub async fn list(&self, user: Uuid) -> Vec<Value> {
        let reply = self
            .http
            .get(format!("{}/v4/reports?user_id={user}", self.base))
            .send()
            .await
            .expect("GET /v4/reports");
        assert_eq!(reply.status(), 200);
        reply.json().await.expect("list JSON")
    }

    /// The stored status of `report`, from the list.
    pub async fn status_of(&self, user: Uuid, report: &str) -> String {
        self.list(user)
            .await
            .into_iter()
            .find(|r| r["reportId"] == report)
            .map(|r| r["reportStatus"].as_str().unwrap_or_default().to_owned())
            .expect("the report is listed")
    }
}
