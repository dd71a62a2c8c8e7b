//! The policy against real listeners on loopback: what it refuses never reaches them, what
//! the allow-list admits does.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use advancia_egress::{EgressError, EgressPolicy};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::any;

/// A listener on `ip` counting the requests that reach it; answers 204, or a redirect to
/// `redirect` when given.
async fn listener(ip: &str, redirect: Option<String>) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(any(move || {
        let h = h.clone();
        let redirect = redirect.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            match redirect {
                Some(to) => {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
                }
                None => StatusCode::NO_CONTENT.into_response(),
            }
        }
    }));
    let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, hits)
}

/// One POST through the policy's client, as the webhook channel sends them.
async fn post(policy: &EgressPolicy, url: &str) -> Result<StatusCode, String> {
    policy.check_request(url).map_err(|e| e.to_string())?;
    let client = policy.client(reqwest::Client::builder()).build().unwrap();
    client
        .post(url)
        .body("{}")
        .send()
        .await
        .map(|r| r.status())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn loopback_is_refused_at_registration_and_connection_unless_allow_listed() {
    let (addr, hits) = listener("127.0.0.1", None).await;
    let port = addr.port();
    let dev = EgressPolicy::production().allowing_http();

    // An address literal: refused before any connection.
    let literal = format!("http://127.0.0.1:{port}/hook");
    assert!(matches!(
        dev.check_url(&literal).await,
        Err(EgressError::Internal {
            range: "loopback",
            ..
        })
    ));
    assert!(post(&dev, &literal).await.is_err());

    // A name: registration resolves it and refuses; a connection resolves it again and
    // refuses (the check that defeats DNS rebinding, since it runs per connection).
    let name = format!("http://localhost:{port}/hook");
    assert!(matches!(
        dev.check_url(&name).await,
        Err(EgressError::Internal { .. })
    ));
    dev.check_request(&name).unwrap();
    let err = post(&dev, &name).await.unwrap_err();
    assert!(err.contains("loopback"), "{err}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused request reached the listener"
    );

    // Production: not even http.
    assert_eq!(
        EgressPolicy::production().check_url(&name).await,
        Err(EgressError::SchemeNotAllowed)
    );

    // The operator's allow-list admits it, by address or by name.
    let allowed = dev.clone().allowing("127.0.0.1").unwrap();
    allowed.check_url(&literal).await.unwrap();
    assert_eq!(
        post(&allowed, &literal).await.unwrap(),
        StatusCode::NO_CONTENT
    );
    let by_name = dev.allowing("localhost").unwrap();
    by_name.check_url(&name).await.unwrap();
    assert_eq!(post(&by_name, &name).await.unwrap(), StatusCode::NO_CONTENT);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn redirects_are_not_followed_inward() {
    let (inner, inner_hits) = listener("127.0.0.2", None).await;
    let to = format!("http://127.0.0.2:{}/internal", inner.port());
    let (outer, outer_hits) = listener("127.0.0.1", Some(to)).await;
    let policy = EgressPolicy::production()
        .allowing_http()
        .allowing("127.0.0.1")
        .unwrap();
    let status = post(&policy, &format!("http://127.0.0.1:{}/hook", outer.port()))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(outer_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        inner_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn private_link_local_and_metadata_literals_are_refused() {
    let dev = EgressPolicy::production().allowing_http();
    for url in [
        "http://10.0.0.5/",
        "http://172.20.1.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.1.1/",
        "http://224.0.0.251/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://[::ffff:10.0.0.1]/",
    ] {
        let e = dev.check_url(url).await.unwrap_err();
        assert!(matches!(e, EgressError::Internal { .. }), "{url}: {e}");
        assert!(post(&dev, url).await.is_err(), "{url}");
    }
}
