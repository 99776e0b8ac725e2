//! The command line: `serve`, `check`, `validate`. Output here is for people; errors name the
//! file, line and key they come from.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::domain;
use crate::policy::{Decision, Match, Policy};

#[derive(Parser)]
#[command(
    name = "iocsink",
    version,
    about = "DNS sinkhole for threat-intel indicators"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "config/iocsink.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the DNS server (SIGHUP reloads config and feeds).
    Serve,
    /// Explain the verdict for a name, without a running server.
    Check {
        /// The name to check.
        name: String,
        /// The client asking (client allowlists apply).
        #[arg(long, default_value = "127.0.0.1")]
        client: IpAddr,
    },
    /// Parse the config and every feed; exit 1 on errors, 2 if feed lines were skipped.
    Validate,
    /// Per feed: source, format, indicators, skipped lines, data age, last refresh and error.
    Feeds,
    /// Ask a running server one question; exit 0 if it answers within 2 s (health checks).
    Probe {
        /// The server to ask.
        #[arg(long, default_value = "127.0.0.1:53")]
        server: std::net::SocketAddr,
        /// The name to ask for (type A).
        #[arg(long, default_value = "healthcheck.iocsink.invalid")]
        name: String,
    },
    /// Read a block log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Top clients, top indicators, malware families and actions.
    Summary {
        /// Only events newer than this, e.g. 24h, 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        file: PathBuf,
    },
    /// The last events as readable lines; -f keeps following.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[arg(short, long)]
        follow: bool,
        file: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => serve(&cli.config),
        Command::Check { ref name, client } => check(&cli.config, name, client),
        Command::Validate => validate(&cli.config),
        Command::Feeds => feeds(&cli.config),
        Command::Log { command } => log_command(command),
        Command::Probe { server, ref name } => probe(server, name),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IOCSINK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load(path: &std::path::Path) -> Result<(Config, Policy), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let policy = Policy::build(&config)?;
    Ok((config, policy))
}

fn serve(path: &std::path::Path) -> ExitCode {
    init_tracing();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match crate::server::Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let policy = server.policy();
        for feed in &policy.feeds {
            report_feed_to_log(feed);
        }
        tracing::info!(listen = ?server.addrs, indicators = policy.indicator_count(), "serving");
        drop(policy);
        wait_for_signals(&server).await;
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn report_feed_to_log(feed: &crate::policy::FeedStatus) {
    tracing::info!(feed = %feed.name, format = feed.format.as_str(), indicators = feed.indicators, "feed loaded");
    for skip in &feed.first_skips {
        tracing::warn!(
            "{}:{}: skipped: {}",
            feed.path.display(),
            skip.line,
            skip.reason
        );
    }
}

#[cfg(unix)]
async fn wait_for_signals(server: &crate::server::Server) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => server.reload_logged("SIGHUP").await,
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reopening the block log");
                server.handler().log().reopen();
            }
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_server: &crate::server::Server) {
    let _ = tokio::signal::ctrl_c().await;
}

fn check(path: &std::path::Path, name: &str, client: IpAddr) -> ExitCode {
    let (_, policy) = match load(path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let key = match domain::normalize(name) {
        Ok(k) => k,
        Err(why) => {
            eprintln!("error: {name:?} is not a domain name: {why}");
            return ExitCode::FAILURE;
        }
    };
    match policy.decide(&key, client) {
        Decision::Refuse => {
            println!("{key}: REFUSED (client {client} is outside server.allow_clients)")
        }
        Decision::Forward => println!("{key}: not listed; forwarded upstream"),
        Decision::Block(hit) => {
            println!("{key}: BLOCKED ({})", hit.action().as_str());
            print_match(&policy, &hit);
        }
        Decision::Observe(hit) => {
            println!("{key}: LOGGED (observe-only feed; forwarded upstream)");
            print_match(&policy, &hit);
        }
        Decision::Allow(hit, rule) => {
            println!("{key}: ALLOWED by {rule} (would otherwise be blocked)");
            print_match(&policy, &hit);
        }
    }
    ExitCode::SUCCESS
}

fn print_match(policy: &Policy, hit: &Match<'_>) {
    let kind = if hit.wildcard {
        "wildcard, names below only"
    } else {
        "name and everything below"
    };
    let shown = if hit.wildcard {
        format!("*.{}", hit.indicator)
    } else {
        hit.indicator.to_string()
    };
    println!("  indicator: {shown} ({kind})");
    for (s, action) in hit.sources().iter().zip(hit.source_actions()) {
        let path = policy
            .feeds
            .iter()
            .find(|f| *f.name == *s.feed)
            .map(|f| f.path.display().to_string())
            .unwrap_or_default();
        println!(
            "  feed: {} ({}:{}), action {}",
            s.feed,
            path,
            s.line,
            action.as_str()
        );
        let m = &s.meta;
        let fields: [(&str, Option<String>); 9] = [
            ("malware", m.malware.as_deref().map(str::to_string)),
            ("threat_type", m.threat_type.as_deref().map(str::to_string)),
            ("confidence", m.confidence.map(|c| c.to_string())),
            ("first_seen", m.first_seen.as_deref().map(str::to_string)),
            ("last_seen", m.last_seen.as_deref().map(str::to_string)),
            ("ioc_type", m.ioc_type.as_deref().map(str::to_string)),
            ("ioc_id", m.ioc_id.as_deref().map(str::to_string)),
            ("tags", m.tags.as_deref().map(str::to_string)),
            ("reference", m.reference.as_deref().map(str::to_string)),
        ];
        for (label, value) in fields {
            if let Some(v) = value {
                println!("    {label}: {v}");
            }
        }
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    let (config, policy) = match load(path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("config OK: {}", config.source.display());
    let mut skipped_any = false;
    for feed in &policy.feeds {
        let skipped: usize = feed.skipped.values().sum();
        println!(
            "feed {}: {} indicators ({}, {}), {} lines skipped",
            feed.name,
            feed.indicators,
            feed.format.as_str(),
            feed.path.display(),
            skipped
        );
        for (kind, n) in &feed.ignored {
            println!("  ignored {n}: {kind}");
        }
        for (reason, n) in &feed.skipped {
            println!("  skipped {n}: {reason}");
        }
        for s in &feed.first_skips {
            eprintln!("warning: {}:{}: {}", feed.path.display(), s.line, s.reason);
        }
        skipped_any |= skipped > 0;
    }
    println!(
        "{} distinct names listed; {} allowlisted domains, {} allowlisted client networks",
        policy.indicator_count(),
        config.allow.domains.len(),
        config.allow.clients.len()
    );
    if skipped_any {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn feeds(path: &std::path::Path) -> ExitCode {
    let (config, policy) = match load(path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = std::time::SystemTime::now();
    let unix_now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ago = |secs: i64| {
        humantime::format_duration(std::time::Duration::from_secs(secs.max(0) as u64)).to_string()
    };
    for (feed, cfg) in policy.feeds.iter().zip(&config.feeds) {
        println!("{}", feed.name);
        println!("  source:      {}", feed.source);
        println!("  format:      {}", feed.format.as_str());
        println!("  indicators:  {}", feed.indicators);
        let skipped: usize = feed.skipped.values().sum();
        println!("  skipped:     {skipped} lines");
        for (reason, n) in &feed.skipped {
            println!("    {n} x {reason}");
        }
        for (kind, n) in &feed.ignored {
            println!("  ignored:     {n} x {kind}");
        }
        for (filter, n) in &feed.filtered {
            println!("  filtered:    {n} x {filter}");
        }
        match feed.data_time.and_then(|t| now.duration_since(t).ok()) {
            Some(age) => println!(
                "  data age:    {} ({})",
                ago(age.as_secs() as i64),
                feed.path.display()
            ),
            None => println!(
                "  data age:    no data{}",
                feed.missing
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        }
        if cfg.url.is_some() {
            let state = crate::remote::load_state(&config.download.cache_dir, &feed.name);
            let every = cfg.refresh.map_or("1h".to_string(), |d| {
                humantime::format_duration(d).to_string()
            });
            println!("  refresh:     every {every}");
            match state.last_success {
                Some(t) => println!("  last refresh: {} ago", ago(unix_now - t)),
                None => println!("  last refresh: never"),
            }
            println!(
                "  last error:  {}",
                state.last_error.as_deref().unwrap_or("none")
            );
        }
    }
    ExitCode::SUCCESS
}

fn log_command(command: LogCommand) -> ExitCode {
    let result = match command {
        LogCommand::Summary { since, file } => {
            crate::logtools::summary(&file, since).map(|s| print!("{s}"))
        }
        LogCommand::Tail {
            lines,
            follow,
            file,
        } => crate::logtools::tail(&file, lines, follow, &mut std::io::stdout()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(server: std::net::SocketAddr, name: &str) -> ExitCode {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let ask = || -> Result<String, String> {
        let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| e.to_string())?;
        let mut msg = Message::query();
        msg.metadata.id = rand::random();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(qname, RecordType::A));
        let bind: std::net::SocketAddr = if server.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .expect("literal");
        let socket = std::net::UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        socket
            .send_to(&msg.to_vec().map_err(|e| e.to_string())?, server)
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4096];
        let (n, _) = socket
            .recv_from(&mut buf)
            .map_err(|e| format!("no answer: {e}"))?;
        let answer = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
        Ok(answer.metadata.response_code.to_string())
    };
    match ask() {
        Ok(rcode) => {
            println!("{server} answered {rcode}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {server}: {e}");
            ExitCode::FAILURE
        }
    }
}
