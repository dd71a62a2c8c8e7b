//! Publish and consume-with-ack rates of both buses on this machine:
//! `cargo run --release -p advancia-bus --example throughput [N]` (NATS at `NATS_URL`).

use std::sync::Arc;
use std::time::Instant;

use advancia_bus::memory::InProcessBus;
use advancia_bus::nats::{NatsBus, NatsConfig};
use advancia_bus::{Bus, Envelope, SubscribeOptions};
use futures_util::StreamExt;

async fn measure(
    name: &str,
    bus: Bus,
    prefix: &str,
    n: usize,
) -> Result<(), advancia_bus::BusError> {
    let mut sub = bus
        .subscribe(SubscribeOptions::new(format!("{prefix}.>"), "bench").batch(256))
        .await?;
    let started = Instant::now();
    for i in 0..n {
        bus.publish(Envelope::new(
            format!("{prefix}.x"),
            format!("{i}").into_bytes(),
        ))
        .await?;
    }
    let published = started.elapsed();
    let started = Instant::now();
    for _ in 0..n {
        match sub.next().await {
            Some(d) => d?.ack().await?,
            None => return Err(advancia_bus::BusError::Closed),
        }
    }
    let consumed = started.elapsed();
    println!(
        "{name}: {n} messages; publish {:.0}/s (acknowledged by the bus), consume+ack {:.0}/s",
        n as f64 / published.as_secs_f64(),
        n as f64 / consumed.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), advancia_bus::BusError> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    measure("in-process", Arc::new(InProcessBus::default()), "bench", n).await?;
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("bench{}", std::process::id());
    let nats = NatsBus::connect(&NatsConfig::new(
        url,
        format!("BENCH_{prefix}"),
        vec![format!("{prefix}.>")],
    ))
    .await?;
    let r = measure("jetstream", Arc::new(nats.clone()), &prefix, n).await;
    nats.delete_stream().await?;
    r
}
