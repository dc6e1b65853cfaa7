//! `hawiya serve` and `hawiya demo`: one axum app with every crate's routes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};

use axum::routing::get;
use ca::Authority;
use ca::http::CaState;
use ca::ocsp::OcspResponder;
use idp::provider::Provider;

use crate::CommandResult;
use crate::config::{CeremonyFile, DataDir};
use crate::enrolment::Enrolment;

/// The whole application: every crate's router, merged, with the headers every response
/// carries. Shared by `main` and the tests.
pub fn app(ca: Arc<CaState>, idp: Arc<Provider>, enrolment: Arc<Enrolment>) -> Router {
    let index = index_text(&ca.authority, &idp);
    Router::new()
        .route("/", get(move || async move { index }))
        .merge(crate::enrolment::router(enrolment))
        .merge(ca::http::router(ca))
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
    text.push_str(&format!("OpenID Connect provider:\n  {}/.well-known/openid-configuration\n", idp.issuer()));
    text
}

async fn state(data: &DataDir) -> Result<(Arc<CaState>, Arc<Provider>, Arc<Enrolment>), Box<dyn std::error::Error>> {
    let (durable, keys, policies) = (data.store().await?, data.key_store()?, data.policies()?);
    let authority = Arc::new(Authority::load(durable.clone(), keys.clone(), policies.clone()).await?);
    let ocsp = OcspResponder::new(&authority)?;
    let enrolment = Enrolment::new(Arc::clone(&authority), durable.clone(), data.config.ra_officers.clone());
    let provider = crate::idp_cmd::provider(data, &authority.ceremony().base_url, durable, keys, policies).await?;
    Ok((Arc::new(CaState { authority, ocsp }), Arc::new(provider), Arc::new(enrolment)))
}

/// Serves an initialised data directory until Ctrl-C or SIGTERM, and the metrics on their
/// own address if asked.
pub async fn serve(data: &Path, listen: SocketAddr, metrics: Option<SocketAddr>) -> CommandResult {
    serve_with(data, listen, metrics, false).await
}

async fn serve_with(data: &Path, listen: SocketAddr, metrics: Option<SocketAddr>, demo: bool) -> CommandResult {
    let data = DataDir::open(data)?;
    let (state, provider, enrolment) = state(&data).await?;
    let base = state.authority.ceremony().base_url.clone();
    if !base.contains(&listen.to_string()) {
        tracing::warn!(%base, %listen, "the certificates point at a base URL this server does not listen on (fine behind a proxy)");
    }
    if let Some(address) = metrics {
        let metrics = tokio::net::TcpListener::bind(address).await.map_err(|e| format!("cannot listen on {address} for metrics: {e}"))?;
        let provider = Arc::clone(&provider);
        let router = Router::new().route("/metrics", get(move || async move { provider.metrics() }));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, router).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    // Housekeeping: expired refresh-token families leave the store once an hour.
    let purging = Arc::clone(&provider);
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
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("Hawiya is serving on http://{listen}\n");
    println!("{}", index_text(&state.authority, &provider));
    if let Some(address) = metrics {
        println!("Metrics (Prometheus) for operators:\n  http://{address}/metrics\n");
    }
    let mut app = app(state, provider, enrolment);
    if demo {
        app = app.merge(crate::demo::router(&data.path, &base, data.policies()?)?);
        println!("Demo e-services (log in to one, open the other, log out of both):\n  {base}/demo/\n");
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

/// First start: creates the data directory with the default ceremony; then serves it.
pub async fn demo(data: &Path, listen: SocketAddr, metrics: Option<SocketAddr>) -> CommandResult {
    if !DataDir::exists(data) {
        println!("First start: creating {} (SQLite, soft key store, the default CA hierarchy)…", data.display());
        DataDir::create_demo_secret(data)?;
        let mut ceremony = CeremonyFile::load(None)?;
        ceremony.ceremony.base_url = format!("http://{listen}");
        crate::ca_cmd::init(data, ceremony).await?;
    } else {
        println!("Reusing {}", data.display());
    }
    if !crate::demo::seeded(data) {
        let dir = DataDir::open(data)?;
        let (durable, policies) = (dir.store().await?, dir.policies()?);
        let base = durable.ceremony().await?.map(|c| c.base_url).ok_or("the data directory has no CA hierarchy")?;
        crate::demo::seed(data, &base, durable.as_ref(), &policies).await?;
    }
    serve_with(data, listen, metrics, true).await
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
