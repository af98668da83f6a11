//! `climc`: the command line client of cloudpods-rs.
//!
//! Commands are generated from one table of resources ([`resources`], vocabulary in
//! [`spec`]; see `docs/adding-a-resource.md`). A command line goes through four steps:
//!
//! ```text
//! argv ──cli (clap)──> CommandDef + Values ──plan──> Plan ──exec (HTTP)──> answers ──output──> stdout
//! ```
//!
//! Exit codes: 0 success, 1 an error from a service or the network, 2 a usage error.

pub mod cli;
pub mod exec;
pub mod output;
pub mod plan;
pub mod resources;
pub mod spec;
pub mod transfer;

#[cfg(test)]
mod tests;

use std::process::ExitCode;

use plan::UsageError;

/// Runs climc on the process's arguments.
pub fn main() -> ExitCode {
    let resources = resources::all();
    let commands = cli::commands(&resources);
    let matches = cli::build(&commands).subcommands(transfer::commands()).get_matches();
    let globals = cli::global_opts(&matches).unwrap_or_else(|e| e.exit());
    let Some((name, sub)) = matches.subcommand() else {
        return ExitCode::from(2);
    };
    if transfer::commands().iter().any(|c| c.get_name() == name) {
        return run_streaming(&globals, name, sub);
    }
    let Some(cmd) = commands.iter().find(|c| c.name == name) else {
        eprintln!("Error: unknown command {name}");
        return ExitCode::from(2);
    };
    let values = cli::values(cmd, sub);
    let read_file = |path: &str| std::fs::read_to_string(path);
    let planned = plan::plan(cmd, &values, &read_file).and_then(|p| Ok((p, exec::auth_params(&globals)?)));
    let (plan, params) = match planned {
        Ok(x) => x,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let session = exec::login(&globals, &params).await?;
        exec::run(&session, &plan, globals.output_format).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() { ExitCode::from(2) } else { ExitCode::from(1) }
        }
    }
}

/// Runs `image-upload` / `image-download` (see [`transfer`]).
fn run_streaming(globals: &cli::GlobalOpts, name: &str, sub: &clap::ArgMatches) -> ExitCode {
    let params = match exec::auth_params(globals) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let session = exec::login(globals, &params).await?;
        transfer::run(name, sub, &session, globals.output_format).await.unwrap_or_else(|| Ok(()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() { ExitCode::from(2) } else { ExitCode::from(1) }
        }
    }
}
