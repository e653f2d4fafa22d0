//! What each command does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bankgate_core::forced::FailureCode;
use bankgate_core::sandbox::SandboxBank;
use bankgate_core::{Clock, InstanceName, SystemClock};
use bankgate_server::admin::failures::ForcedRuleView;
use bankgate_server::admin::views::{
    ClearedLockoutsView, ClockView, CreatedCustomerView, CustomerView, DeliveryView, InstanceView,
    LockoutView, LoginView, ResetView, RotatedKeysView, WebhookView,
};
use bankgate_server::guard::LimitConfig;
use bankgate_server::listen::{ADMIN_MAX_CONNECTIONS, ConnectionLimits, serve_with};
use bankgate_server::operator::{FailureFor, FaultKind, NewCustomer, NewFailure, Operator};
use bankgate_server::{App, AppSettings, Handover};
use bankgate_store::{AttemptFilter, ClockChange, PgConnectError, Store};
use serde_json::json;

use crate::cli::{
    Cli, Command, CustomerCommand, FailuresCommand, FaultsCommand, InstanceCommand,
    LockoutsCommand, LoginCommand,
};
use crate::config::Settings;
use crate::{Access, open_store};

/// Runs the parsed command line.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    // Needs no database: nothing is opened, nothing created.
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "bankgate", &mut std::io::stdout());
        return Ok(());
    }
    let out = Output { json: cli.json };
    let access = match &cli.command {
        Command::Instance(InstanceCommand::List)
        | Command::Instance(InstanceCommand::Clock {
            advance: None,
            reset: false,
            ..
        })
        | Command::Instance(InstanceCommand::Webhook {
            url: None,
            rotate_secret: false,
            disable: false,
            replay: None,
            ..
        })
        | Command::Customer(CustomerCommand::List { .. }) => Access::Read,
        _ => Access::Write,
    };
    match cli.command {
        Command::Serve(_) => serve(&settings).await,
        Command::Instance(command) => {
            instance(&operator(&settings, access).await?, command, out).await
        }
        Command::Customer(command) => {
            customer(&operator(&settings, access).await?, command, out).await
        }
        Command::Login(command) => login(&operator(&settings, access).await?, command, out).await,
        Command::Lockouts(command) => {
            lockouts(
                &operator(&settings, access).await?,
                &SystemClock,
                command,
                out,
            )
            .await
        }
        Command::Failures(command) => {
            failures(&operator(&settings, access).await?, command, out).await
        }
        Command::Faults(command) => faults(&operator(&settings, access).await?, command, out).await,
        // These talk to a server over HTTP and never open a database.
        Command::Doctor(args) => doctor(&args, out).await,
        Command::Requests(args) => crate::requests::run(&args, cli.json).await,
        Command::Completions { .. } => Ok(()),
        Command::Webhooks(crate::cli::WebhooksCommand::Listen(args)) => {
            crate::listen::run(args).await
        }
    }
}

async fn doctor(args: &crate::cli::DoctorArgs, out: Output) -> anyhow::Result<()> {
    let report = crate::doctor::run(args).await;
    out.print(to_json(&report), || report.to_string());
    match report.failures() {
        0 => Ok(()),
        failed => anyhow::bail!("{failed} of {} doctor checks failed", report.checks.len()),
    }
}

/// The store of an operator command, opened (and seeded) once.
async fn operator(settings: &Settings, access: Access) -> anyhow::Result<Operator> {
    let store = open_store(&settings.database, settings.pg_settings(), access).await?;
    let operator = Operator::new(store, Arc::new(SystemClock), SandboxBank::builtin());
    if operator.seed_toolbox().await? {
        tracing::info!(database = %settings.database.shown(), "seeded the public toolbox instance");
    }
    Ok(operator)
}

/// The first wait between two attempts to open the database at start, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

async fn serve(args: &Settings) -> anyhow::Result<()> {
    // Handlers first: a signal sent as soon as the address is printed must already shut down
    // gracefully rather than kill the process.
    let signals = count_signals()?;
    // Both ports before the database: a port in use is reported before anything is written.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin API)", args.admin_listen))?;
    let admin_address = admin_listener.local_addr()?;

    // Until the database is open, both ports answer: 503 on the API, not ready on /readyz.
    let api = Handover::new(bankgate_server::starting_api());
    let admin = Handover::new(bankgate_server::starting_admin());
    let admin_server = tokio::spawn(serve_with(
        admin_listener,
        admin.router(),
        ConnectionLimits {
            max_connections: ADMIN_MAX_CONNECTIONS,
            ..args.connection_limits()
        },
        // The admin listener holds no client work worth finishing: it stops with the process.
        std::future::pending(),
    ));
    let mut first = signals.clone();
    let graceful = async move {
        let _ = first.wait_for(|count| *count >= 1).await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
    let api_server = tokio::spawn(serve_with(
        listener,
        api.router(),
        args.connection_limits(),
        graceful,
    ));

    let Some(store) = open_when_reachable(args, (address, admin_address), signals.clone()).await?
    else {
        admin_server.abort();
        tracing::info!("stopped before the database was ready");
        return Ok(());
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let operator = Operator::new(store.clone(), clock.clone(), SandboxBank::builtin());
    if operator.seed_toolbox().await? {
        tracing::info!(database = %args.database.shown(), "seeded the public toolbox instance");
    }
    let app = App::build(
        store,
        AppSettings {
            clock,
            limits: LimitConfig {
                max_failures_per_client: args.max_failures_per_client,
                max_failures_per_target: args.max_failures_per_target,
                window: args.failure_window,
                lockout: args.failure_lockout,
                limit_sandbox_passwords: args.limit_sandbox_passwords,
            },
            admin_token: args.admin_token.clone(),
            purge_interval: Some(args.purge_interval),
            journal_capacity: args.journal_size,
            body_read_timeout: args.body_read_timeout,
            // Woken at once when callbacks are queued; the tick finds retries coming due.
            webhook_interval: Some(Duration::from_secs(1)),
        },
    );
    api.hand_over(app.api.clone());
    admin.hand_over(app.admin.clone());
    // Printed, not only logged: scripts and tests read the address (port 0 picks one).
    {
        // A reader that stops after the first line (a script waiting for it) must not take
        // the server down with a broken pipe: these lines are best-effort.
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "bankgate listening on http://{address}");
        let _ = writeln!(stdout, "bankgate admin API on http://{admin_address}");
        if let Some(token) = args
            .admin_token
            .as_deref()
            .filter(|_| args.admin_token_generated)
        {
            // Shown this once, on stdout only (never logged): the operator copies it now.
            let _ = writeln!(stdout, "bankgate admin token (generated): {token}");
        }
        let _ = write!(stdout, "{}", banner(args, address));
        let _ = stdout.flush();
    }
    if let Some(path) = &args.admin_token_file {
        warn_if_others_can_read(path);
    }
    tracing::info!(%address, %admin_address, admin_api = args.admin_token.is_some(), "serving the Flinks API");

    let mut more = signals;
    let grace = args.shutdown_grace;
    // A stalled client must not keep the process alive: stop anyway after the grace period, or
    // at once on a second signal.
    let forced = async move {
        let _ = more.wait_for(|count| *count >= 1).await;
        tokio::select! {
            () = tokio::time::sleep(grace) => {
                tracing::warn!("in-flight requests still running after the grace period; stopping");
            }
            _ = more.wait_for(|count| *count >= 2) => {
                tracing::warn!("second signal: stopping now");
            }
        }
    };
    tokio::select! {
        served = api_server => served??,
        () = forced => {}
    }
    // Dropping the app stops the purge.
    drop(app);
    admin_server.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The admin token file should be bankgate's alone; a shared one still works (container
/// secrets are often mounted 0444), with a warning.
#[cfg(unix)]
fn warn_if_others_can_read(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:o}", metadata.permissions().mode() & 0o777),
            "the admin token file is readable by other users; `chmod 600` it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_: &std::path::Path) {}

/// What an operator needs after the start: which database, whether the admin API answers,
/// and how to make a first call (the toolbox credentials are published, not secrets).
fn banner(args: &Settings, address: std::net::SocketAddr) -> String {
    use bankgate_core::model::toolbox;
    let admin = if args.admin_token.is_some() {
        "on (Authorization: Bearer with the admin token)"
    } else {
        "off: /admin/ refuses every call until --admin-token or --admin-token-file is set (/healthz, /readyz, /metrics answer)"
    };
    format!(
        "database: {database}\n\
         admin API: {admin}\n\
         toolbox: customerId {customer}, secret key {secret}, x-api-key {api_key}\n\
         try: curl -s -X POST http://{address}/v3/{customer}/BankingServices/GenerateAuthorizeToken \
         -H 'flinks-auth-key: {secret}'\n",
        database = args.database.shown(),
        customer = toolbox::CUSTOMER_ID,
        secret = toolbox::SECRET_KEY,
        api_key = toolbox::API_KEY,
    )
}

/// Opens the store for `serve`. A database that cannot be reached yet (PostgreSQL down,
/// starting, or full) is tried again with a growing wait, each cause logged, until it answers or
/// a signal stops the node (`None`); a setting only the operator can fix (a password, a
/// missing database, a certificate) stops the start at once.
async fn open_when_reachable(
    args: &Settings,
    (address, admin_address): (std::net::SocketAddr, std::net::SocketAddr),
    mut signals: tokio::sync::watch::Receiver<u32>,
) -> anyhow::Result<Option<Arc<dyn Store>>> {
    let mut wait = FIRST_RETRY;
    for attempt in 1_u32.. {
        let error = match open_store(&args.database, args.pg_settings(), Access::Write).await {
            Ok(store) => {
                if attempt > 1 {
                    tracing::info!(attempt, "the database answered; starting");
                }
                return Ok(Some(store));
            }
            Err(error) => error,
        };
        let transient = error
            .downcast_ref::<PgConnectError>()
            .is_some_and(|error| error.transient);
        if !transient {
            return Err(error);
        }
        if attempt == 1 {
            // Printed too: whoever started the node sees why it is not serving yet.
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(
                stdout,
                "bankgate waiting for the database: http://{address} answers 503 until it is \
                 ready, readiness on http://{admin_address}/readyz"
            );
            let _ = stdout.flush();
        }
        tracing::warn!(
            attempt,
            retry_in = %humantime::format_duration(wait),
            cause = %format!("{error:#}"),
            "the database cannot be reached yet; retrying"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = signals.wait_for(|count| *count >= 1) => return Ok(None),
        }
        wait = (wait * 2).min(LONGEST_RETRY);
    }
    Ok(None)
}

/// Installs the Ctrl-C and SIGTERM handlers now (before the address is printed, so a signal
/// sent right after it is handled) and counts the signals received.
#[cfg(unix)]
fn count_signals() -> anyhow::Result<tokio::sync::watch::Receiver<u32>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let (count, received) = tokio::sync::watch::channel(0_u32);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            count.send_modify(|count| *count += 1);
        }
    });
    Ok(received)
}

#[cfg(not(unix))]
fn count_signals() -> anyhow::Result<tokio::sync::watch::Receiver<u32>> {
    let (count, received) = tokio::sync::watch::channel(0_u32);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            count.send_modify(|count| *count += 1);
        }
    });
    Ok(received)
}

#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// Prints a JSON value, or its text rendering.
    fn print(self, value: serde_json::Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }
}

/// The JSON of a view, as the admin API answers it.
fn to_json(view: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or(serde_json::Value::Null)
}

async fn instance(
    operator: &Operator,
    command: InstanceCommand,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        InstanceCommand::Create {
            name,
            kind,
            token_lifetime,
        } => {
            let instance = operator
                .create_instance(name, kind, Some(token_lifetime))
                .await?;
            out.print(to_json(InstanceView::from(&instance)), || {
                format!(
                    "created {} instance {} (tokens live {})",
                    instance.kind,
                    instance.name,
                    humantime::format_duration(instance.token_lifetime)
                )
            });
        }
        InstanceCommand::Reset { name } => {
            let reset = operator.reset_instance(&name).await?;
            out.print(to_json(ResetView::new(name.as_str(), reset)), || {
                    format!(
                        "reset {name}: {} tokens, {} LoginIds, {} sessions, {} pending MFA exchanges removed",
                        reset.tokens, reset.logins, reset.sessions, reset.pending
                    )
                },
            );
        }
        InstanceCommand::Clock {
            name,
            advance,
            reset,
        } => {
            let clock = match (advance, reset) {
                (Some(by), _) => {
                    operator
                        .change_clock(&name, ClockChange::Advance(by))
                        .await?
                }
                (None, true) => operator.change_clock(&name, ClockChange::Reset).await?,
                (None, false) => operator.clock(&name).await?,
            };
            out.print(to_json(ClockView::new(name.as_str(), clock)), || {
                if clock.offset.is_zero() {
                    format!("{name}: {} (real time)", clock.now.to_rfc3339())
                } else {
                    format!(
                        "{name}: {} ({} ahead of real time)",
                        clock.now.to_rfc3339(),
                        humantime::format_duration(clock.offset)
                    )
                }
            });
        }
        InstanceCommand::Webhook {
            name,
            url,
            rotate_secret,
            disable,
            deliveries,
            replay,
        } => {
            webhook(
                operator,
                &name,
                url,
                rotate_secret,
                disable,
                deliveries,
                replay,
                out,
            )
            .await?
        }
        InstanceCommand::ConnectToken { name, setting } => {
            let required = setting == "required";
            operator.set_connect_token_required(&name, required).await?;
            out.print(
                json!({ "instance": name.as_str(), "connectTokenRequired": required }),
                || format!("the Connect page of {name} now has the authorize token {setting}"),
            );
        }
        InstanceCommand::List => {
            let instances = operator.list_instances().await?;
            out.print(
                to_json(instances.iter().map(InstanceView::from).collect::<Vec<_>>()),
                || {
                    instances
                        .iter()
                        .map(|i| {
                            format!(
                                "{}\t{}\ttokens live {}",
                                i.name,
                                i.kind,
                                humantime::format_duration(i.token_lifetime)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            );
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn webhook(
    operator: &Operator,
    name: &InstanceName,
    url: Option<String>,
    rotate_secret: bool,
    disable: bool,
    deliveries: bool,
    replay: Option<String>,
    out: Output,
) -> anyhow::Result<()> {
    let show = |view: WebhookView| {
        let text = match (&view.url, &view.secret) {
            (None, _) => format!("{name}: no webhook"),
            (Some(url), Some(secret)) => format!(
                "{name}: callbacks go to {url}\nsecret (shown once; sign check: \
                 Base64(HMAC-SHA256(secret, body))): {secret}"
            ),
            (Some(url), None) => format!("{name}: callbacks go to {url}"),
        };
        out.print(to_json(&view), || text);
    };
    if let Some(url) = url {
        let (webhook, secret) = operator.set_webhook(name, &url).await?;
        show(WebhookView::new(name.as_str(), Some(&webhook), secret));
    } else if rotate_secret {
        let webhook = operator.rotate_webhook_secret(name).await?;
        let secret = Some(webhook.secret.clone());
        show(WebhookView::new(name.as_str(), Some(&webhook), secret));
    } else if disable {
        operator.disable_webhook(name).await?;
        show(WebhookView::new(name.as_str(), None, None));
    } else if deliveries {
        let listed = operator.deliveries(name, 100).await?;
        let views: Vec<DeliveryView> = listed.iter().map(DeliveryView::from).collect();
        out.print(to_json(&views), || {
            if views.is_empty() {
                return "no deliveries".to_owned();
            }
            views
                .iter()
                .map(|d| {
                    let last = match (&d.last_status_code, &d.last_error) {
                        (Some(code), _) => format!("HTTP {code}"),
                        (None, Some(error)) => error.clone(),
                        (None, None) => "-".to_owned(),
                    };
                    format!(
                        "{}\t{}\t{}\t{}\tattempts {}/{}\tlast {}\tnext {}",
                        d.id,
                        d.response_type,
                        d.request_id,
                        d.status,
                        d.attempts,
                        d.max_attempts,
                        last,
                        d.next_attempt_at.as_deref().unwrap_or("-")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
    } else if let Some(id) = replay {
        let delivery = operator.replay_delivery(name, &id).await?;
        let view = DeliveryView::from(&delivery);
        out.print(to_json(&view), || {
            format!(
                "delivery {} ({}) will be sent again at once by a running server",
                view.id, view.response_type
            )
        });
    } else {
        let webhook = operator.webhook(name).await?;
        show(WebhookView::new(name.as_str(), webhook.as_ref(), None));
    }
    Ok(())
}

async fn customer(
    operator: &Operator,
    command: CustomerCommand,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        CustomerCommand::Create {
            instance,
            label,
            no_authorize_token_required,
            no_api_key_required,
        } => {
            let (customer, keys) = operator
                .create_customer(NewCustomer {
                    instance,
                    label,
                    authorize_token_required: !no_authorize_token_required,
                    api_key_required: !no_api_key_required,
                })
                .await?;
            out.print(to_json(CreatedCustomerView::new(&customer, &keys)), || {
                format!(
                    "customerId: {}\ninstance:   {}\nsecret key: {}   (flinks-auth-key on GenerateAuthorizeToken)\nx-api-key:  {}   (x-api-key on DeleteCard and the data endpoints)\nThe keys are shown only now; bankgate keeps only their digests.",
                    customer.id,
                    customer.instance,
                    keys.secret_key.expose(),
                    keys.api_key.expose()
                )
            });
        }
        CustomerCommand::List { instance } => {
            let customers = operator.list_customers(instance.as_ref()).await?;
            out.print(
                to_json(customers.iter().map(CustomerView::from).collect::<Vec<_>>()),
                || {
                    customers
                        .iter()
                        .map(|c| format!("{}\t{}\t{}", c.id, c.instance, c.label))
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            );
        }
        CustomerCommand::RotateKeys { customer_id, grace } => {
            let keys = operator.rotate_keys(customer_id, grace).await?;
            let view = RotatedKeysView {
                customer_id: customer_id.to_string(),
                secret_key: keys.secret_key.expose().to_owned(),
                api_key: keys.api_key.expose().to_owned(),
                old_keys_valid_for_seconds: grace.as_secs(),
            };
            out.print(to_json(view), || {
                    format!(
                        "customerId: {customer_id}\nsecret key: {}\nx-api-key:  {}\nThe old keys stop working {}.",
                        keys.secret_key.expose(),
                        keys.api_key.expose(),
                        if grace.is_zero() {
                            "now".to_owned()
                        } else {
                            format!("in {}", humantime::format_duration(grace))
                        }
                    )
                },
            );
        }
    }
    Ok(())
}

async fn login(operator: &Operator, command: LoginCommand, out: Output) -> anyhow::Result<()> {
    match command {
        LoginCommand::Create {
            customer,
            institution,
            username,
        } => {
            let login = operator
                .create_login(customer, &institution, &username)
                .await?;
            out.print(to_json(LoginView::from(&login)), || {
                format!("LoginId: {}", login.id)
            });
        }
    }
    Ok(())
}

/// A `--client` as the limiter names clients.
fn client_filter(client: Option<String>) -> anyhow::Result<Option<String>> {
    client
        .map(|text| {
            bankgate_server::guard::parse_client(&text).with_context(|| {
                format!(
                    "--client {text:?} is not a client: give an IP address (an IPv6 one stands \
                     for its /64), a /64 as listed, or `unknown`"
                )
            })
        })
        .transpose()
}

async fn lockouts(
    operator: &Operator,
    clock: &dyn Clock,
    command: LockoutsCommand,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        LockoutsCommand::List { customer, client } => {
            let filter = AttemptFilter {
                customer_id: customer,
                client: client_filter(client)?,
            };
            let now = clock.now();
            let views: Vec<LockoutView> = operator
                .lockouts(&filter)
                .await?
                .iter()
                .filter_map(|row| LockoutView::new(row, now))
                .collect();
            out.print(to_json(&views), || {
                if views.is_empty() {
                    return "no lockouts".to_owned();
                }
                views
                    .iter()
                    .map(LockoutView::line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        LockoutsCommand::Clear {
            customer, client, ..
        } => {
            let filter = AttemptFilter {
                customer_id: customer,
                client: client_filter(client)?,
            };
            let cleared = operator.clear_lockouts(&filter).await?;
            out.print(to_json(ClearedLockoutsView { cleared }), || {
                format!("cleared {cleared} failure counters")
            });
        }
    }
    Ok(())
}

/// One line a rule.
fn rule_line(rule: &ForcedRuleView) -> String {
    let target = match (&rule.login_id, &rule.username, &rule.endpoint) {
        (Some(login), _, _) => format!("LoginId {login}"),
        (_, Some(username), _) => format!("user {username}"),
        (_, _, Some(endpoint)) => format!("{endpoint} on {}", rule.instance),
        _ => String::new(),
    };
    format!(
        "{}  {target}: {}, {} left",
        rule.id, rule.action, rule.remaining
    )
}

fn print_rules(rules: &[bankgate_core::forced::ForcedRule], out: Output) {
    let views: Vec<ForcedRuleView> = rules.iter().map(ForcedRuleView::from).collect();
    out.print(to_json(&views), || {
        if views.is_empty() {
            "no rules".to_owned()
        } else {
            views.iter().map(rule_line).collect::<Vec<_>>().join("\n")
        }
    });
}

async fn failures(
    operator: &Operator,
    command: FailuresCommand,
    out: Output,
) -> anyhow::Result<()> {
    match command {
        FailuresCommand::Add {
            customer,
            target,
            code,
            count,
            seconds,
        } => {
            let code = code
                .parse::<FailureCode>()
                .map_err(|error| anyhow::anyhow!(error))?;
            let target = match (target.login_id, target.username) {
                (Some(login), _) => FailureFor::Login(login),
                (None, Some(username)) => FailureFor::Username(username),
                (None, None) => anyhow::bail!("give --login-id or --username"),
            };
            let rule = operator
                .add_failure(
                    customer,
                    target,
                    NewFailure {
                        code,
                        count,
                        seconds,
                    },
                )
                .await?;
            let view = ForcedRuleView::from(&rule);
            out.print(to_json(&view), || rule_line(&view));
        }
        FailuresCommand::List { customer, login_id } => {
            print_rules(&operator.failures(customer, login_id).await?, out);
        }
        FailuresCommand::Clear { customer, login_id } => {
            let cleared = operator.clear_failures(customer, login_id).await?;
            out.print(serde_json::json!({ "cleared": cleared }), || {
                format!("{cleared} rules cleared")
            });
        }
    }
    Ok(())
}

async fn faults(operator: &Operator, command: FaultsCommand, out: Output) -> anyhow::Result<()> {
    match command {
        FaultsCommand::Add {
            instance,
            endpoint,
            status,
            stall,
            count,
        } => {
            let kind = match (status, stall) {
                (Some(status), _) => FaultKind::Status(status),
                (None, Some(stall)) if stall.subsec_nanos() == 0 => {
                    FaultKind::StallSeconds(stall.as_secs())
                }
                (None, Some(_)) => anyhow::bail!("--stall takes whole seconds (1s to 60s)"),
                (None, None) => anyhow::bail!("give --status or --stall"),
            };
            let rule = operator
                .add_fault(&instance, &endpoint, kind, count)
                .await?;
            let view = ForcedRuleView::from(&rule);
            out.print(to_json(&view), || rule_line(&view));
        }
        FaultsCommand::List { instance } => print_rules(&operator.faults(&instance).await?, out),
        FaultsCommand::Clear { instance } => {
            let cleared = operator.clear_faults(&instance).await?;
            out.print(serde_json::json!({ "cleared": cleared }), || {
                format!("{cleared} rules cleared")
            });
        }
    }
    Ok(())
}
