//! Automatic HTTPS. Each certificate request of a domain (added, retried by
//! its owner, or due for renewal) runs as `ssl` jobs, one per attempt, at most
//! [`ATTEMPTS`] with a doubling wait between them. PostgreSQL says what is
//! due (`store::certificates`); a job claims its attempt there first, so a
//! job delivered twice does the work once, and the sweeper pushes the job of
//! any attempt that is due (a push lost with Redis, a process that died).
//!
//! One attempt: an order at the ACME server for the name, the HTTP-01
//! challenge answered by the application's node (an `ingress.challenge` task:
//! its nginx serves `/.well-known/acme-challenge/`), finalize with a fresh
//! key, store the certificate (key sealed), and ask the application's actor
//! to rewrite its node's ingress, which then serves the name over HTTPS and
//! redirects HTTP there. A request whose attempts all fail leaves the domain
//! `failed` (or, for a renewal, `active` with the old certificate) with the
//! reason in words its owner can act on, and a notice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use serde::{Deserialize, Serialize};
use skypanel_actors::{AppRequest, Orchestrator};
use skypanel_domain::acme::{ATTEMPTS, backoff, explain};
use skypanel_protocol::task::{ChallengeSpec, TaskSpec};
use skypanel_store::certificates::{self, Issued, Work};
use skypanel_store::domains::Domain;
use skypanel_store::tasks::{self, NewTask};
use skypanel_store::{Store, notifications};
use tokio::sync::Mutex;

use crate::Queues;

/// How long a claimed attempt holds its domain; an attempt that has not
/// finished by then (its process died) is followed by the next one.
const ATTEMPT_HOLD: Duration = Duration::from_secs(10 * 60);
/// How long a domain of an application without a node waits before looking again.
const WAIT_FOR_NODE: Duration = Duration::from_secs(60);
/// The most domains one sweep pushes.
const SWEEP_BATCH: i64 = 500;

/// How the platform gets certificates.
#[derive(Debug, Clone)]
pub struct SslSettings {
    /// The ACME directory (Let's Encrypt's in production); `None`: HTTPS is off.
    pub directory: Option<String>,
    /// The CA that signs the ACME server's own HTTPS certificate, for a
    /// private ACME server (pebble in tests); it replaces the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// The account's contact address.
    pub contact: Option<String>,
    /// Certificates expiring within this are renewed.
    pub renew_before: Duration,
    /// The wait before the second attempt (doubled for the third).
    pub retry_base: Duration,
    /// How long the node may take to answer a challenge, and the ACME
    /// server to validate it and issue.
    pub step_timeout: Duration,
}

impl Default for SslSettings {
    fn default() -> Self {
        Self {
            directory: None,
            ca_bundle: None,
            contact: None,
            renew_before: Duration::from_secs(30 * 24 * 3600),
            retry_base: Duration::from_secs(60),
            step_timeout: Duration::from_secs(120),
        }
    }
}

impl SslSettings {
    pub fn enabled(&self) -> bool {
        self.directory.is_some()
    }
}

/// One attempt of one certificate request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslJob {
    pub domain_id: i64,
    pub request: i32,
    pub attempt: i32,
}

impl SslJob {
    /// The job of a domain's next attempt.
    pub fn next_of(domain: &Domain) -> Self {
        Self {
            domain_id: domain.id,
            request: domain.ssl_request,
            attempt: domain.ssl_attempts + 1,
        }
    }
}

/// What the ssl jobs work with.
#[derive(Clone)]
pub(crate) struct SslContext {
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub queues: Queues,
    pub settings: Arc<SslSettings>,
    /// The ACME account, once loaded or created.
    pub account: Arc<Mutex<Option<Account>>>,
}

/// Why an attempt failed.
#[derive(Debug)]
enum Failure {
    /// The ACME server refused: the customer's part (DNS, CAA, limits).
    Refused(String),
    /// The platform's part: the ACME server unreachable, the node silent.
    Platform(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Self::Refused(m) | Self::Platform(m) => m,
        }
    }
}

/// A database error inside an attempt: logged; the owner reads only that
/// the platform failed.
fn store_err(err: skypanel_store::Error) -> Failure {
    tracing::error!(error = %err, "database error during a certificate attempt");
    Failure::Platform("an internal error of the platform".into())
}

fn platform(what: &str) -> impl Fn(instant_acme::Error) -> Failure + '_ {
    move |err| Failure::Platform(format!("{what}: {err}"))
}

/// Starts a certificate request for a domain and queues its first attempt
/// (when the push fails, the sweeper pushes it within half a minute).
pub async fn request_certificate(
    store: &Store,
    queues: &Queues,
    domain_id: i64,
    at: DateTime<Utc>,
) -> Result<Domain, skypanel_store::Error> {
    let mut conn = store.conn().await?;
    let domain = certificates::request(&mut conn, domain_id, at).await?;
    drop(conn);
    if let Err(err) = queues.push_ssl(&SslJob::next_of(&domain), None).await {
        tracing::warn!(domain_id, error = %err, "cannot queue a certificate attempt; the sweeper will");
    }
    Ok(domain)
}

/// Starts the renewal of every certificate expiring within `within`;
/// answers how many.
pub async fn request_renewals(
    store: &Store,
    queues: &Queues,
    at: DateTime<Utc>,
    within: Duration,
) -> Result<usize, skypanel_store::Error> {
    let before = at + chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
    let mut conn = store.conn().await?;
    let renewing = certificates::request_renewals(&mut conn, at, before).await?;
    drop(conn);
    for domain in &renewing {
        if let Err(err) = queues.push_ssl(&SslJob::next_of(domain), None).await {
            tracing::warn!(domain_id = domain.id, error = %err, "cannot queue a renewal; the sweeper will");
        }
    }
    if !renewing.is_empty() {
        tracing::info!(count = renewing.len(), "certificate renewals started");
    }
    Ok(renewing.len())
}

/// Requests certificates of domains that never had one asked for, pushes
/// the job of every attempt that is due, and has certificates issued during
/// a rollout installed. Run by the sweeper.
pub(crate) async fn sweep(ctx: &SslContext) -> Result<(), BoxDynError> {
    let at = ctx.orchestrator.context().now();
    let mut conn = ctx.store.conn().await?;
    certificates::request_unasked(&mut conn, at).await?;
    let due = certificates::due(&mut conn, at, SWEEP_BATCH).await?;
    let uninstalled = certificates::awaiting_install(&mut conn, SWEEP_BATCH).await?;
    drop(conn);
    for domain in &due {
        ctx.queues.push_ssl(&SslJob::next_of(domain), None).await?;
    }
    for app_id in uninstalled {
        if let Err(err) = ctx
            .orchestrator
            .app_request(app_id, AppRequest::Reconfigure)
            .await
        {
            tracing::warn!(app_id, error = %err, "cannot install a new certificate yet");
        }
    }
    Ok(())
}

/// The daily renewal tick.
pub(crate) async fn tick(_tick: Tick, ctx: Data<SslContext>) -> Result<(), BoxDynError> {
    let now = ctx.orchestrator.context().now();
    request_renewals(&ctx.store, &ctx.queues, now, ctx.settings.renew_before).await?;
    Ok(())
}

/// The `ssl` queue's handler: runs one attempt, if it is still the one due.
pub(crate) async fn handle(job: SslJob, ctx: Data<SslContext>) -> Result<(), BoxDynError> {
    let mut now = ctx.orchestrator.context().now();
    let mut conn = ctx.store.conn().await?;
    let Some(mut work) = certificates::work(&mut conn, job.domain_id, now).await? else {
        return Ok(());
    };
    if work.domain.ssl_request != job.request || work.domain.ssl_attempts != job.attempt - 1 {
        return Ok(()); // an earlier request's job, or a second delivery
    }
    // A job scheduled for its due time may start a moment early.
    if let Some(due) = work.domain.ssl_due_at
        && due > now
        && let Ok(wait) = (due - now).to_std()
        && wait <= Duration::from_secs(5)
    {
        drop(conn);
        tokio::time::sleep(wait).await;
        now = ctx.orchestrator.context().now();
        conn = ctx.store.conn().await?;
    }
    let hostname = work.domain.hostname.clone();
    if job.attempt > ATTEMPTS {
        // The last attempt's process died before it could say how it went.
        drop(conn);
        return give_up(
            &ctx,
            &work,
            &job,
            "the last attempt did not finish; retry it",
            now,
        )
        .await;
    }
    let Some(node_id) = work.node_id else {
        let until = now + chrono::Duration::from_std(WAIT_FOR_NODE)?;
        certificates::defer(
            &mut conn,
            job.domain_id,
            job.request,
            job.attempt - 1,
            until,
            "waiting for the application's first deploy: its certificate is requested once it runs on a node",
        )
        .await?;
        return Ok(());
    };
    let hold = now + chrono::Duration::from_std(ATTEMPT_HOLD)?;
    if !certificates::claim(
        &mut conn,
        job.domain_id,
        job.request,
        job.attempt,
        now,
        hold,
    )
    .await?
    {
        return Ok(()); // not due, or another worker has it
    }
    drop(conn);
    work.domain.ssl_attempts = job.attempt;
    tracing::info!(hostname = %hostname, attempt = job.attempt, renewal = work.serving, "requesting a certificate");
    // The attempt ends well within its hold, so the next one never runs beside it.
    let limit = ATTEMPT_HOLD - Duration::from_secs(60);
    let outcome = tokio::time::timeout(limit, obtain(&ctx, &work, node_id))
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Platform(
                "the certificate authority did not finish in time".into(),
            ))
        });
    match outcome {
        Ok((chain_pem, key_pem, expires_at)) => {
            let sealed_key = ctx
                .orchestrator
                .context()
                .secrets()
                .seal_str(&key_pem, &Domain::key_associated_data(job.domain_id));
            let mut conn = ctx.store.conn().await?;
            let now = ctx.orchestrator.context().now();
            let cert = Issued {
                chain_pem: &chain_pem,
                sealed_key,
                expires_at,
            };
            if certificates::issued(
                &mut conn,
                job.domain_id,
                job.request,
                job.attempt,
                cert,
                now,
            )
            .await?
            {
                drop(conn);
                tracing::info!(hostname = %hostname, %expires_at, "certificate issued");
                let app_id = work.domain.application_id;
                if let Err(err) = ctx
                    .orchestrator
                    .app_request(app_id, AppRequest::Reconfigure)
                    .await
                {
                    // The next rollout of the application carries it.
                    tracing::warn!(app_id, error = %err, "cannot install a new certificate now");
                }
            }
            Ok(())
        }
        Err(failure) => {
            let now = ctx.orchestrator.context().now();
            tracing::warn!(hostname = %hostname, attempt = job.attempt, error = %failure.message(), "certificate attempt failed");
            if job.attempt < ATTEMPTS {
                let wait = backoff(ctx.settings.retry_base, job.attempt + 1);
                let retry_at = now + chrono::Duration::from_std(wait)?;
                let mut conn = ctx.store.conn().await?;
                let current = certificates::attempt_failed(
                    &mut conn,
                    job.domain_id,
                    job.request,
                    job.attempt,
                    failure.message(),
                    retry_at,
                )
                .await?;
                drop(conn);
                if current {
                    let next = SslJob {
                        attempt: job.attempt + 1,
                        ..job
                    };
                    ctx.queues.push_ssl(&next, Some(wait)).await?;
                }
                Ok(())
            } else {
                give_up(&ctx, &work, &job, failure.message(), now).await
            }
        }
    }
}

/// The request's last attempt failed: the domain says why, and its owner is told.
async fn give_up(
    ctx: &SslContext,
    work: &Work,
    job: &SslJob,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), BoxDynError> {
    let mut conn = ctx.store.conn().await?;
    let Some(domain) = certificates::gave_up(
        &mut conn,
        job.domain_id,
        job.request,
        job.attempt,
        reason,
        now,
    )
    .await?
    else {
        return Ok(());
    };
    let (kind, message) = if domain.ssl_status == "active" {
        (
            "ssl_renewal_failed",
            format!(
                "The HTTPS certificate of {} could not be renewed; the current one keeps serving until it expires. {reason}",
                domain.hostname
            ),
        )
    } else {
        (
            "ssl_failed",
            format!(
                "{} has no HTTPS certificate; it is served over HTTP only. {reason}",
                domain.hostname
            ),
        )
    };
    let notice = notifications::create(&mut conn, work.user_id, kind, &message, now).await?;
    drop(conn);
    tracing::warn!(hostname = %domain.hostname, "certificate request failed after {ATTEMPTS} attempts");
    if let Err(err) = ctx.queues.push_notice(notice.id).await {
        tracing::warn!(error = %err, "cannot queue a notice; the sweeper will");
    }
    Ok(())
}

/// The control plane's ACME account: loaded from PostgreSQL, or created at
/// the ACME server and stored (its key sealed) on first use.
async fn account(ctx: &SslContext) -> Result<Account, Failure> {
    let mut cached = ctx.account.lock().await;
    if let Some(account) = cached.as_ref() {
        return Ok(account.clone());
    }
    let Some(directory) = ctx.settings.directory.clone() else {
        return Err(Failure::Platform("HTTPS is not configured".into()));
    };
    let builder = || match &ctx.settings.ca_bundle {
        Some(path) => Account::builder_with_root(path),
        None => Account::builder(),
    };
    let secrets = ctx.orchestrator.context().secrets();
    let data = certificates::account_associated_data(&directory);
    let mut conn = ctx.store.conn().await.map_err(store_err)?;
    let stored = certificates::acme_account(&mut conn, &directory)
        .await
        .map_err(store_err)?;
    drop(conn);
    let sealed = match stored {
        Some(sealed) => sealed,
        None => {
            let contact = ctx.settings.contact.as_ref().map(|c| format!("mailto:{c}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let (_, credentials) = builder()
                .map_err(platform("cannot reach the certificate authority"))?
                .create(
                    &NewAccount {
                        contact: &contacts,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    directory.clone(),
                    None,
                )
                .await
                .map_err(platform("cannot create the ACME account"))?;
            let json = serde_json::to_string(&credentials)
                .map_err(|e| Failure::Platform(e.to_string()))?;
            let mut conn = ctx.store.conn().await.map_err(store_err)?;
            // Another control plane may have stored its account first: that one is kept.
            let kept = certificates::save_acme_account(
                &mut conn,
                &directory,
                &secrets.seal_str(&json, &data),
            )
            .await
            .map_err(store_err)?;
            tracing::info!(directory = %directory, "ACME account created");
            kept
        }
    };
    let json = secrets
        .open_str(&sealed, &data)
        .map_err(|e| Failure::Platform(format!("the stored ACME account does not open: {e}")))?;
    let credentials = serde_json::from_str(&json)
        .map_err(|e| Failure::Platform(format!("the stored ACME account is unreadable: {e}")))?;
    let account = builder()
        .map_err(platform("cannot reach the certificate authority"))?
        .from_credentials(credentials)
        .await
        .map_err(platform("cannot reach the certificate authority"))?;
    *cached = Some(account.clone());
    Ok(account)
}

/// One attempt at a certificate for the domain: answers the chain, the
/// private key (PEM) and the certificate's expiry.
async fn obtain(
    ctx: &SslContext,
    work: &Work,
    node_id: i64,
) -> Result<(String, String, DateTime<Utc>), Failure> {
    let hostname = work.domain.hostname.clone();
    let account = account(ctx).await?;
    let identifiers = [Identifier::Dns(hostname.clone())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| refused_or_platform(&hostname, e, "cannot place the certificate order"))?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization
            .map_err(|e| refused_or_platform(&hostname, e, "cannot read the order"))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(Failure::Refused(format!(
                    "the certificate authority holds the authorization of {hostname} as {other:?}; retry later"
                )));
            }
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| {
                Failure::Refused(format!(
                    "the certificate authority offers no HTTP challenge for {hostname}"
                ))
            })?;
        let spec = ChallengeSpec {
            app_id: work.domain.application_id,
            hostname: hostname.clone(),
            token: challenge.token.clone(),
            key_authorization: challenge.key_authorization().as_str().to_string(),
        };
        answer_on_node(ctx, node_id, spec).await?;
        challenge
            .set_ready()
            .await
            .map_err(|e| refused_or_platform(&hostname, e, "cannot start the validation"))?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(ctx.settings.step_timeout);
    let status = order.poll_ready(&retries).await;
    match status {
        Ok(OrderStatus::Ready) => {}
        Ok(_) => return Err(validation_failure(&hostname, &mut order).await),
        Err(instant_acme::Error::Api(problem)) => {
            return Err(Failure::Refused(explain(
                &hostname,
                problem.r#type.as_deref(),
                problem.detail.as_deref(),
            )));
        }
        Err(err) => return Err(platform("the validation did not finish")(err)),
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| refused_or_platform(&hostname, e, "cannot finalize the order"))?;
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| refused_or_platform(&hostname, e, "cannot fetch the certificate"))?;
    let expires_at = expiry(&chain).ok_or_else(|| {
        Failure::Platform("the certificate authority sent a certificate that does not parse".into())
    })?;
    // The next certificate for the name (a renewal) must prove again that
    // the name points here: authorities may hand a still-valid
    // authorization to a later order, which would skip the challenge. Done
    // aside, so that a slow authority never costs the certificate in hand.
    tokio::spawn(async move {
        let deactivate = async {
            let mut authorizations = order.authorizations();
            while let Some(Ok(mut authorization)) = authorizations.next().await {
                if let Err(err) = authorization.deactivate().await {
                    tracing::debug!(%hostname, error = %err, "cannot deactivate a used authorization");
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), deactivate).await;
    });
    Ok((chain, key_pem, expires_at))
}

/// An error of the ACME server in the customer's words, or the platform's failure.
fn refused_or_platform(hostname: &str, err: instant_acme::Error, what: &str) -> Failure {
    match err {
        instant_acme::Error::Api(problem) => Failure::Refused(explain(
            hostname,
            problem.r#type.as_deref(),
            problem.detail.as_deref(),
        )),
        other => Failure::Platform(format!("{what}: {other}")),
    }
}

/// Why the order became invalid: the challenge's own error, read again.
async fn validation_failure(hostname: &str, order: &mut instant_acme::Order) -> Failure {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if authorization.refresh().await.is_err() {
            continue;
        }
        let problem = authorization
            .challenges
            .iter()
            .find_map(|c| c.error.clone());
        if let Some(problem) = problem {
            return Failure::Refused(explain(
                hostname,
                problem.r#type.as_deref(),
                problem.detail.as_deref(),
            ));
        }
    }
    Failure::Refused(explain(hostname, None, Some("the validation failed")))
}

/// Queues the challenge's answer on the node and waits until its ingress serves it.
async fn answer_on_node(
    ctx: &SslContext,
    node_id: i64,
    spec: ChallengeSpec,
) -> Result<(), Failure> {
    let store_err = |e: skypanel_store::Error| Failure::Platform(format!("database: {e}"));
    let task_spec = TaskSpec::IngressChallenge(spec);
    let payload = serde_json::to_value(&task_spec).map_err(|e| Failure::Platform(e.to_string()))?;
    let new = NewTask {
        node_id,
        application_id: None,
        build_id: None,
        database_id: None,
        kind: task_spec.kind(),
        payload,
        generation: None,
        max_attempts: 3,
    };
    let mut conn = ctx.store.conn().await.map_err(store_err)?;
    let task = tasks::create(&mut conn, &new, None)
        .await
        .map_err(store_err)?;
    drop(conn);
    let deadline = tokio::time::Instant::now() + ctx.settings.step_timeout;
    loop {
        // Armed before the look, so an end committed after it is not missed.
        let end = ctx.store.task_ends().arm(task.id);
        let mut conn = ctx.store.conn().await.map_err(store_err)?;
        let task = tasks::by_id(&mut conn, task.id).await.map_err(store_err)?;
        drop(conn);
        match task.status.as_str() {
            "succeeded" => return Ok(()),
            "failed" | "cancelled" => {
                return Err(Failure::Platform(format!(
                    "the application's node could not answer the challenge: {}",
                    task.error.unwrap_or_default()
                )));
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::Platform(
                "the application's node did not answer the challenge in time".into(),
            ));
        }
        // Its end wakes this at once; the bound is a catch-up.
        end.wait(Duration::from_secs(2)).await;
    }
}

/// When the first certificate of a PEM chain expires.
fn expiry(chain_pem: &str) -> Option<DateTime<Utc>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}
