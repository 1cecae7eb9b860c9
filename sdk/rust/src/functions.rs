//! Functions, activations, triggers, rules and their dead letters.

use ferrobase_core::wire::functions::{
    ActivationPage, ActivationRecord, FunctionDocument, FunctionSpec, FunctionSummary,
};
use ferrobase_core::wire::triggers::{
    DeadLetterPage, Fired, Replayed, RuleDocument, RuleSpec, TriggerDocument, TriggerSpec,
};
use ferrobase_core::wire::{ActivationAccepted, Page};
use reqwest::Method;

use crate::{Client, Error, paged};

impl Client {
    /// `PUT /v1/functions/{ns}/{name}`: deploys `spec` as the function's next version.
    pub async fn deploy(
        &self,
        ns: &str,
        name: &str,
        spec: &FunctionSpec,
    ) -> Result<FunctionSummary, Error> {
        let path = format!("/v1/functions/{ns}/{name}");
        Self::json(self.request(Method::PUT, &path).json(spec)).await
    }

    /// `GET /v1/functions/{ns}/{name}[?version=]`: one version in full and every version's
    /// summary.
    pub async fn function(
        &self,
        ns: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<FunctionDocument, Error> {
        let mut request = self.request(Method::GET, &format!("/v1/functions/{ns}/{name}"));
        if let Some(version) = version {
            request = request.query(&[("version", version)]);
        }
        Self::json(request).await
    }

    /// `GET /v1/functions/{ns}`: the latest version of each function the caller may read.
    pub async fn functions(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<FunctionSummary>, Error> {
        let request = self.request(Method::GET, &format!("/v1/functions/{ns}"));
        Self::json(paged(request, after, limit)).await
    }

    /// `DELETE /v1/functions/{ns}/{name}`: the function and all its versions.
    pub async fn delete_function(&self, ns: &str, name: &str) -> Result<(), Error> {
        let path = format!("/v1/functions/{ns}/{name}");
        Self::send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    /// `POST /v1/functions/{ns}/{target}/invoke`: runs `name` or `name@version` and answers
    /// its result. A failed activation is an [`Error::Api`] whose details name the
    /// `activation_id`.
    pub async fn invoke(
        &self,
        ns: &str,
        target: &str,
        event: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        let path = format!("/v1/functions/{ns}/{target}/invoke");
        Self::json(self.request(Method::POST, &path).json(event)).await
    }

    /// `POST .../invoke?blocking=false`: starts the activation and answers its id at once.
    pub async fn invoke_async(
        &self,
        ns: &str,
        target: &str,
        event: &serde_json::Value,
    ) -> Result<ActivationAccepted, Error> {
        let path = format!("/v1/functions/{ns}/{target}/invoke");
        let request = self
            .request(Method::POST, &path)
            .query(&[("blocking", "false")])
            .json(event);
        Self::json(request).await
    }

    /// `GET /v1/activations/{ns}[?function=]`: activation records, newest first.
    pub async fn activations(
        &self,
        ns: &str,
        function: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ActivationPage, Error> {
        let mut request = self.request(Method::GET, &format!("/v1/activations/{ns}"));
        if let Some(function) = function {
            request = request.query(&[("function", function)]);
        }
        Self::json(paged(request, after, limit)).await
    }

    /// `GET /v1/activations/{ns}/{id}`.
    pub async fn activation(&self, ns: &str, id: &str) -> Result<ActivationRecord, Error> {
        let path = format!("/v1/activations/{ns}/{id}");
        Self::json(self.request(Method::GET, &path)).await
    }

    /// `PUT /v1/triggers/{ns}/{name}`.
    pub async fn put_trigger(
        &self,
        ns: &str,
        name: &str,
        spec: &TriggerSpec,
    ) -> Result<TriggerDocument, Error> {
        let path = format!("/v1/triggers/{ns}/{name}");
        Self::json(self.request(Method::PUT, &path).json(spec)).await
    }

    /// `GET /v1/triggers/{ns}/{name}`.
    pub async fn trigger(&self, ns: &str, name: &str) -> Result<TriggerDocument, Error> {
        let path = format!("/v1/triggers/{ns}/{name}");
        Self::json(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/triggers/{ns}`: triggers by name.
    pub async fn triggers(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<TriggerDocument>, Error> {
        let request = self.request(Method::GET, &format!("/v1/triggers/{ns}"));
        Self::json(paged(request, after, limit)).await
    }

    /// `DELETE /v1/triggers/{ns}/{name}`.
    pub async fn delete_trigger(&self, ns: &str, name: &str) -> Result<(), Error> {
        let path = format!("/v1/triggers/{ns}/{name}");
        Self::send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    /// `POST /v1/triggers/{ns}/{name}/fire`: fires a manual trigger with `payload`.
    pub async fn fire(
        &self,
        ns: &str,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<Fired, Error> {
        let path = format!("/v1/triggers/{ns}/{name}/fire");
        Self::json(self.request(Method::POST, &path).json(payload)).await
    }

    /// `PUT /v1/rules/{ns}/{name}`.
    pub async fn put_rule(
        &self,
        ns: &str,
        name: &str,
        rule: &RuleSpec,
    ) -> Result<RuleDocument, Error> {
        let path = format!("/v1/rules/{ns}/{name}");
        Self::json(self.request(Method::PUT, &path).json(rule)).await
    }

    /// `GET /v1/rules/{ns}/{name}`.
    pub async fn rule(&self, ns: &str, name: &str) -> Result<RuleDocument, Error> {
        let path = format!("/v1/rules/{ns}/{name}");
        Self::json(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/rules/{ns}`: rules by name.
    pub async fn rules(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<RuleDocument>, Error> {
        let request = self.request(Method::GET, &format!("/v1/rules/{ns}"));
        Self::json(paged(request, after, limit)).await
    }

    /// `DELETE /v1/rules/{ns}/{name}`: the rule's delivery stops.
    pub async fn delete_rule(&self, ns: &str, name: &str) -> Result<(), Error> {
        let path = format!("/v1/rules/{ns}/{name}");
        Self::send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    /// `GET /v1/dlq/{ns}`: events the rules gave up on.
    pub async fn dead_letters(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage, Error> {
        let request = self.request(Method::GET, &format!("/v1/dlq/{ns}"));
        Self::json(paged(request, after, limit)).await
    }

    /// `POST /v1/dlq/{ns}/{id}/replay`: delivers a dead letter once more.
    pub async fn replay_dead_letter(&self, ns: &str, id: &str) -> Result<Replayed, Error> {
        let path = format!("/v1/dlq/{ns}/{id}/replay");
        Self::json(self.request(Method::POST, &path)).await
    }

    /// `DELETE /v1/dlq/{ns}/{id}`: drops a dead letter.
    pub async fn purge_dead_letter(&self, ns: &str, id: &str) -> Result<(), Error> {
        let path = format!("/v1/dlq/{ns}/{id}");
        Self::send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }
}
