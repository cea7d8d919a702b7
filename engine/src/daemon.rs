//! `dialhound serve`: the daemon's start-up, run and shutdown.

use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::control::commands::Control;
use crate::ingest::directory::Directory;
use crate::metrics::Metrics;
use crate::store::vault::Vault;
use crate::store::{SledStore, Store};

/// Runs the daemon until SIGTERM or SIGINT, then stops accepting work, flushes the
/// store and removes the socket.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    serve_until(config, shutdown_signal()).await
}

/// Runs the daemon until `stop` completes (or fails), then shuts it down as
/// [`serve`] does.
pub(crate) async fn serve_until(
    config: Config,
    stop: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let vault = Vault::open_or_create(&config.daemon.key_file)?;
    let data_dir = config.daemon.data_dir.clone();
    let store: Arc<dyn Store> = {
        let vault = vault.clone();
        let dir = data_dir.clone();
        Arc::new(tokio::task::spawn_blocking(move || SledStore::open(&dir, &vault)).await??)
    };
    let mut metrics = Metrics::new();
    metrics.customers.set(store.customer_count() as i64);
    let directory = Directory::new(vault, Arc::clone(&store), config.import_settings());
    let health = config.health.health_config().map_err(anyhow::Error::msg)?;
    let trunks = Arc::new(
        dialhound_line_pool::LinePool::new(&config.trunks, health, std::time::Instant::now())
            .context("the [[trunk]] tables cannot be used")?,
    );
    metrics.watch_trunks(Arc::clone(&trunks));
    let media_config = config
        .media
        .engine_config(config.sip.listen.ip())
        .map_err(anyhow::Error::msg)?;
    let media = Arc::new(
        dialhound_media::engine::MediaEngine::start(media_config)
            .context("cannot start the media threads")?,
    );
    log_media_scheduling(media.scheduling());
    metrics.watch_media(Arc::clone(&media));
    let metrics = Arc::new(metrics);
    let (sip, sip_task) = crate::call::sip_agent::SipAgent::start(
        config.sip.agent_settings(),
        Arc::clone(&trunks),
        Arc::clone(&metrics.sip),
        Some(Arc::clone(&media)),
    )
    .await
    .with_context(|| format!("cannot listen for SIP on {}", config.sip.listen))?;
    tracing::info!(address = %sip.local_addr(), "SIP agent listening");
    let (sms, sms_tasks) = crate::sms::SmsSender::start(
        config.sms.clone(),
        config.links.clone(),
        &config.sms_providers,
        Arc::clone(&store),
        directory.clone(),
        Arc::clone(&metrics.sms),
    );
    let services = Arc::new(crate::campaign::Services {
        sms: sms.clone(),
        sms_settings: config.sms.clone(),
        store: Arc::clone(&store),
        directory: directory.clone(),
        agent: sip.clone(),
        data_dir: data_dir.clone(),
        voice: config.media.voice.clone(),
        tts_rate: config.media.tts_rate,
        tiers: trunks.tiers().to_vec(),
        max_channels: config.trunks.iter().map(|trunk| trunk.channels).sum(),
        max_cps: config.trunks.iter().map(|trunk| trunk.cps).sum(),
        metrics: Arc::clone(&metrics.campaigns),
    });
    let campaigns = Arc::new(crate::campaign::Campaigns::new(&config.campaigns, services));
    campaigns
        .recover()
        .await
        .context("cannot carry on the campaigns that were running")?;
    let control = Arc::new(Control {
        directory,
        trunks,
        metrics: Arc::clone(&metrics),
        data_dir: data_dir.clone(),
        default_mapping: config.import.columns.clone(),
        sip,
        tts: Arc::new(
            dialhound_media::tts::TtsEngine::new(
                data_dir.join("tts-cache"),
                config.media.voice.clone(),
                config.media.tts_rate,
            )
            .context("the [media] voice settings cannot be used")?,
        ),
        campaigns: Arc::clone(&campaigns),
    });

    let metrics_task = match config.daemon.metrics {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot serve metrics on {address}"))?;
            tracing::info!(%address, "serving metrics");
            let metrics = Arc::clone(&metrics);
            Some(tokio::spawn(crate::http::metrics_page::serve(
                listener,
                move || metrics.render(),
            )))
        }
        None => None,
    };

    let links_task = match &config.links {
        Some(links) => {
            let listener = tokio::net::TcpListener::bind(links.listen)
                .await
                .with_context(|| format!("cannot serve tracked links on {}", links.listen))?;
            tracing::info!(address = %links.listen, public = %links.public, "serving tracked links");
            Some(tokio::spawn(crate::http::links::serve(
                listener,
                links.trust_proxy,
                open_link(sms.clone(), Arc::clone(&campaigns)),
            )))
        }
        None => None,
    };

    let socket_path = config.daemon.socket.clone();
    let listener = crate::control::socket::bind(&socket_path).await?;
    let socket_task = tokio::spawn(crate::control::socket::serve(listener, control));
    tracing::info!(
        socket = %socket_path.display(),
        data_dir = %data_dir.display(),
        customers = store.customer_count(),
        "dialhound ready"
    );

    if let Err(error) = stop.await {
        tracing::warn!(%error, "stopping");
    }
    tracing::info!("shutting down: no new requests, flushing the store");
    socket_task.abort();
    campaigns.abort_all().await;
    sip_task.abort();
    for task in sms_tasks {
        task.abort();
    }
    for task in [metrics_task, links_task].into_iter().flatten() {
        task.abort();
    }
    let _ = std::fs::remove_file(&socket_path);
    tokio::task::spawn_blocking(move || store.flush()).await??;
    tracing::info!("stopped");
    Ok(())
}

/// What the link server is handed: the SMS stage looks the link up and
/// records the click, and a click has the customer's campaigns look at
/// them again (`history.last_sms_clicked` changed).
fn open_link(
    sms: crate::sms::SmsSender,
    campaigns: Arc<crate::campaign::Campaigns>,
) -> crate::http::links::OpenLink {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |opening: crate::http::links::Opening| {
        let visit = (!opening.preview).then(|| crate::sms::Visit {
            at: jiff::Timestamp::now(),
            address: opening.address.to_string(),
            user_agent: opening.user_agent,
        });
        let opened = sms
            .open_link(&opening.token, visit.as_ref())
            .map_err(|error| error.to_string())?;
        if let Some(opened) = &opened
            && visit.is_some()
        {
            let campaigns = Arc::clone(&campaigns);
            let customer = opened.customer.clone();
            runtime.spawn(async move { campaigns.customer_changed(customer).await });
        }
        Ok(opened.map(|opened| opened.target))
    })
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

/// One line on how the media threads are scheduled, a warning when real-time
/// was asked for and refused (a refusal is only reported when it was asked).
fn log_media_scheduling(reports: &[dialhound_media::engine::SchedulingReport]) {
    let realtime = reports
        .iter()
        .filter(|report| report.scheduling.is_realtime())
        .count();
    let Some(first) = reports.first() else {
        return;
    };
    let refused = reports.iter().find_map(|report| report.refused.as_deref());
    match refused {
        Some(why) => tracing::warn!(
            threads = reports.len(),
            realtime,
            scheduling = %first.scheduling,
            refused = why,
            "the media threads could not get real-time scheduling, so other busy threads can make RTP late; give the daemon CAP_SYS_NICE or an RLIMIT_RTPRIO of 10, or set [media] realtime = false"
        ),
        None => tracing::info!(
            threads = reports.len(),
            realtime,
            scheduling = %first.scheduling,
            "media threads started"
        ),
    }
}
