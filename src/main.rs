fn main() -> std::process::ExitCode {
    iocsink::cli::main()
}
