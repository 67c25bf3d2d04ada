//! `loadgen`: parses the options, runs the load, prints the report.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", loadgen::cli::USAGE);
        return;
    }
    let options = match loadgen::cli::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n(see loadgen --help)");
            std::process::exit(2);
        }
    };
    let report = match loadgen::run(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(1);
        }
    };
    let json = serde_json::to_string_pretty(&report).expect("report serializes");
    let to_stdout = options.json.as_deref() == Some("-");
    if !options.quiet {
        // With the JSON on stdout, people read the summary on stderr.
        if to_stdout {
            eprint!("{}", report.human());
        } else {
            print!("{}", report.human());
        }
    }
    match options.json.as_deref() {
        Some("-") => println!("{json}"),
        Some(path) => {
            if let Err(e) = std::fs::write(path, json + "\n") {
                eprintln!("loadgen: writing {path}: {e}");
                std::process::exit(1);
            }
        }
        None => {}
    }
    let _ = std::io::stdout().flush();
}
