//! `qkd-kme-sim`: the ETSI GS QKD 014 KME simulator (issue 3).
fn main() {
    eprintln!("qkd-kme-sim: not implemented yet (see issue 3)");
    std::process::exit(2);
}
