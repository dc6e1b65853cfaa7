//! `hawiya serve`: one axum app with every crate's routes (`hawiya demo` adds its e-services
//! to the same app).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use ca::Authority;
use ca::http::CaState;
use ca::ocsp::OcspResponder;
use ca::tsa::TimestampAuthority;
use idp::provider::Provider;

use crate::CommandResult;
use crate::config::{DataDir, Issuer};
use crate::enrolment::{ActivationGuard, Enrolment};
use crate::health::Readiness;

/// The whole application: every crate's router, merged, with the headers every response
/// carries. Shared by `main` and the tests.
pub fn app(ca: Arc<CaState>, idp: Arc<Provider>, enrolment: Arc<Enrolment>, readiness: Arc<Readiness>) -> Router {
    let index = index_text(&ca.authority, &idp);
    Router::new()
        .route("/", get(move || async move { index }))
        .merge(crate::health::router(readiness))
        // The CA's and the RA's requests get request ids as the provider's do.
        .merge(idp::http::with_request_ids(crate::enrolment::router(enrolment).merge(ca::http::router(ca))))
        .merge(idp::http::router(idp))
        .layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
            let headers = response.headers_mut();
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }))
}

fn index_text(authority: &Authority, idp: &Provider) -> String {
    let base = &authority.ceremony().base_url;
    let mut text = format!("Hawiya national PKI ({})\n\nCA certificates:\n", authority.ceremony().country);
    for name in authority.ca_names() {
        text.push_str(&format!("  {base}/ca/{name}.crt\n"));
    }
    text.push_str("CRLs:\n");
    for name in authority.ca_names() {
        text.push_str(&format!("  {base}/crl/{name}.crl\n"));
    }
    text.push_str(&format!("OCSP responder (RFC 6960, POST and GET):\n  {base}/ocsp\n"));
    text.push_str(&format!("Timestamp authority (RFC 3161, POST application/timestamp-query):\n  {base}/tsa\n"));
    text.push_str(&format!("OpenID Connect provider:\n  {}/.well-known/openid-configuration\n", idp.issuer()));
    text.push_str("Health (for load balancers): /healthz (alive), /readyz (stores answering)\n");
    if idp.validates() {
        let issuer = idp.issuer();
        text.push_str(&format!("Signed document validation (no login):\n  {issuer}/verify\n  POST {issuer}/validation (multipart: file, detached, policy)\n"));
    }
    text
}

/// A data directory opened for serving: the CA, the provider (which knows its issuer) and
/// the RA.
pub(crate) struct Opened {
    /// The CA's endpoints.
    pub ca: Arc<CaState>,
    /// The OpenID Connect provider.
    pub provider: Arc<Provider>,
    /// The registration authority.
    pub enrolment: Arc<Enrolment>,
    /// The stores `/readyz` asks.
    pub readiness: Arc<Readiness>,
}

impl Opened {
    /// The whole application.
    pub fn app(&self) -> Router {
        app(Arc::clone(&self.ca), Arc::clone(&self.provider), Arc::clone(&self.enrolment), Arc::clone(&self.readiness))
    }

    /// What the server serves, as the index page says it.
    pub fn index(&self) -> String {
        index_text(&self.ca.authority, &self.provider)
    }
}

/// Opens what a data directory serves; the issuer is `issuer`, else the configured one,
/// else the PKI publication base.
pub(crate) async fn open(data: &DataDir, issuer: Option<Issuer>) -> Result<Opened, Box<dyn std::error::Error>> {
    let (durable, keys, policies) = (data.store().await?, data.key_store()?, data.policies()?);
    let authority = Arc::new(Authority::load(durable.clone(), keys.clone(), policies.clone()).await?);
    crate::audit::start_checkpoints(durable.clone(), Arc::clone(&authority))?;
    let issuer = data.issuer(issuer, &authority.ceremony().base_url)?;
    tracing::info!(target: "audit", event = "server.configured", issuer = issuer.as_str(), data = %data.path.display(), "configuration loaded");
    let ocsp = OcspResponder::new(&authority)?;
    let tsa = TimestampAuthority::new(&authority)?;
    // One ephemeral store (one Redis connection) for the provider and the RA's activation limit.
    let ephemeral = data.ephemeral().await?;
    let readiness = Arc::new(Readiness::new(durable.clone(), Arc::clone(&ephemeral), keys.clone()));
    let guard = ActivationGuard { store: Arc::clone(&ephemeral), trusted_proxies: data.trusted_proxies()? };
    let enrolment = Enrolment::new(Arc::clone(&authority), durable.clone(), data.config.ra_officers.clone()).guarding_activations(guard);
    let ca = Arc::new(CaState { authority, ocsp, tsa });
    // Citizens sign with their smart-ID; the signatures are made with this process's TSA and
    // OCSP responder.
    let signing = idp::signing::Signing { maker: Box::new(crate::signing::Maker::new(Arc::clone(&ca))) };
    // Auditors and citizens validate documents against the trust list and this hierarchy.
    let signing_cas = ca.authority.generations(ca::names::CITIZEN_SIGNING).into_iter().map(|name| ca.authority.certificate(name).map(<[u8]>::to_vec));
    let own = crate::verify::hierarchy(ca.authority.certificate(ca::names::ROOT)?.to_vec(), signing_cas.collect::<Result<_, _>>()?)?;
    let validator = Arc::new(crate::verify::Validator::new(Arc::clone(&policies), &own)?);
    let provider = crate::idp_cmd::provider(data, issuer.as_str(), durable, keys, policies, ephemeral).await?.with_signing(signing).with_validation(validator);
    Ok(Opened { ca, provider: Arc::new(provider), enrolment: Arc::new(enrolment), readiness })
}

/// Binds the public listener.
pub(crate) async fn listen(listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Serves `/metrics` (Prometheus) for operators on an address of its own: the provider's
/// metrics and the CA's (OCSP, TSA, issuance) side by side.
pub(crate) async fn serve_metrics(opened: &Opened, address: SocketAddr) -> CommandResult {
    let metrics = tokio::net::TcpListener::bind(address).await.map_err(|e| format!("cannot listen on {address} for metrics: {e}"))?;
    let (provider, ca) = (Arc::clone(&opened.provider), Arc::clone(&opened.ca));
    let router = Router::new().route(
        "/metrics",
        get(move || async move {
            let mut e = telemetry::Exposition::new();
            provider.metrics(&mut e);
            ca.authority.metrics().render(&mut e);
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], e.finish())
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics, router).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Serves `app` on `listener` until Ctrl-C or SIGTERM, with the provider's housekeeping and
/// its delivery worker (back-channel logout and signing notifications from the shared queue).
pub(crate) async fn run(listener: tokio::net::TcpListener, app: Router, provider: &Arc<Provider>) -> CommandResult {
    tokio::spawn(Arc::clone(provider).run_deliveries());
    // Housekeeping: expired refresh-token families leave the store once an hour.
    let purging = Arc::clone(provider);
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            hourly.tick().await;
            match purging.purge_expired(idp::unix_now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired refresh-token families deleted"),
                Err(e) => tracing::warn!(error = %e, "purging expired refresh-token families failed"),
            }
        }
    });
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

/// Serves an initialised data directory until Ctrl-C or SIGTERM, and the metrics on their
/// own address if asked.
pub async fn serve(data: &Path, listen: SocketAddr, metrics: Option<SocketAddr>, issuer: Option<Issuer>) -> CommandResult {
    let data = DataDir::open(data)?;
    let opened = open(&data, issuer).await?;
    let publication = &opened.ca.authority.ceremony().base_url;
    if !publication.contains(&listen.to_string()) {
        tracing::warn!(%publication, %listen, "the certificates point at a publication base this server does not listen on (fine behind a proxy)");
    }
    if let Some(address) = metrics {
        serve_metrics(&opened, address).await?;
    }
    let listener = crate::server::listen(listen).await?;
    println!("Hawiya is serving on http://{listen}\n");
    println!("{}", opened.index());
    if let Some(address) = metrics {
        println!("Metrics (Prometheus) for operators:\n  http://{address}/metrics\n");
    }
    run(listener, opened.app(), &opened.provider).await
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}
