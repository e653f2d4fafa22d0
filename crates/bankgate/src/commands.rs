//! What each command does.

use std::sync::Arc;

use anyhow::Context;
use bankgate_core::forced::FailureCode;
use bankgate_core::sandbox::SandboxBank;
use bankgate_core::{Clock, SystemClock};
use bankgate_server::admin::failures::ForcedRuleView;
use bankgate_server::admin::views::{
    ClockView, CreatedCustomerView, CustomerView, InstanceView, LoginView, ResetView,
    RotatedKeysView,
};
use bankgate_server::guard::LimitConfig;
use bankgate_server::operator::{FailureFor, FaultKind, NewCustomer, NewFailure, Operator};
use bankgate_server::{App, AppSettings};
use bankgate_store::{ClockChange, Store};
use serde_json::json;

use crate::cli::{
    Cli, Command, CustomerCommand, FailuresCommand, FaultsCommand, InstanceCommand, LoginCommand,
};
use crate::config::Settings;
use crate::open_store;

/// Runs the parsed command line.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    // These talk to a server over HTTP and never open a database.
    match &cli.command {
        Command::Doctor(args) => return doctor(args, Output { json: cli.json }).await,
        Command::Requests(args) => return crate::requests::run(args, cli.json).await,
        _ => {}
    }
    let store = open_store(&settings.database, settings.pg_settings()).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let operator = Operator::new(store.clone(), clock.clone(), SandboxBank::builtin());
    if operator.seed_toolbox().await? {
        tracing::info!(database = %settings.database, "seeded the public toolbox instance");
    }
    let out = Output { json: cli.json };
    match cli.command {
        Command::Serve(_) => serve(store, clock, &settings).await,
        Command::Instance(command) => instance(&operator, command, out).await,
        Command::Customer(command) => customer(&operator, command, out).await,
        Command::Login(command) => login(&operator, command, out).await,
        Command::Failures(command) => failures(&operator, command, out).await,
        Command::Faults(command) => faults(&operator, command, out).await,
        Command::Doctor(args) => doctor(&args, out).await,
        Command::Requests(args) => crate::requests::run(&args, cli.json).await,
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

async fn serve(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    args: &Settings,
) -> anyhow::Result<()> {
    let app = App::build(
        store,
        AppSettings {
            clock,
            limits: LimitConfig {
                max_failures_per_client: args.max_failures_per_client,
                max_failures_per_target: args.max_failures_per_target,
                window: args.failure_window,
                lockout: args.failure_lockout,
            },
            admin_token: args.admin_token.clone(),
            purge_interval: Some(args.purge_interval),
            journal_capacity: args.journal_size,
        },
    );
    // Handlers first: a signal sent as soon as the address is printed must already shut down
    // gracefully rather than kill the process.
    let signals = count_signals()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin API)", args.admin_listen))?;
    let admin_address = admin_listener.local_addr()?;
    // Printed, not only logged: scripts and tests read the address (port 0 picks one).
    {
        // A reader that stops after the first line (a script waiting for it) must not take
        // the server down with a broken pipe: these lines are best-effort.
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "bankgate listening on http://{address}");
        let _ = writeln!(stdout, "bankgate admin API on http://{admin_address}");
        let _ = stdout.flush();
    }
    tracing::info!(%address, %admin_address, admin_api = args.admin_token.is_some(), "serving the Flinks API");
    let admin = tokio::spawn(bankgate_server::serve(
        admin_listener,
        app.admin.clone(),
        // The admin listener holds no client work worth finishing: it stops with the process.
        std::future::pending(),
    ));

    let mut first = signals.clone();
    let graceful = async move {
        let _ = first.wait_for(|count| *count >= 1).await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
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
        served = bankgate_server::serve(listener, app.api.clone(), graceful) => served?,
        () = forced => {}
    }
    // Dropping the app stops the purge.
    drop(app);
    admin.abort();
    tracing::info!("stopped");
    Ok(())
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
