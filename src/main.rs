//! The `gpuclaim` command: a thin layer over the library
//! ([`gpuclaim::cli`]).

fn main() -> std::process::ExitCode {
    gpuclaim::cli::main()
}
