//! `qgw`: the gateway daemon and CLI (issue 4).
fn main() {
    eprintln!("qgw: the gateway daemon is not implemented yet (see issue 4)");
    std::process::exit(2);
}
