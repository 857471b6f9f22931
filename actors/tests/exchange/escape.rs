//! What an account must not do or see: leave its root, write outside incoming,
//! create links, see another tenant's files; and what the watcher must not
//! import: files without a control file, or still open for writing.

use engine::exchange::Folder;

use super::{Env, have_openssh, text, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_attempts_are_refused() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let local = env.local("x.csv", "email\nann@a.example\n");
    let got = env.dir.path().join("passwd");
    let attempts = [
        "cd ..\n".to_owned(),
        "cd /incoming\ncd ../..\n".to_owned(),
        format!("get /etc/passwd {}\n", got.display()),
        format!("get ../../../../etc/passwd {}\n", got.display()),
        format!("put {} /finished/x.csv\n", local.display()),
        format!("put {} /exports/x.csv\n", local.display()),
        format!("put {} /x.csv\n", local.display()),
        format!(
            "put {} /incoming/x.csv\nsymlink /incoming/x.csv /incoming/link\n",
            local.display()
        ),
        "ln -s /etc/passwd /incoming/passwd\n".to_owned(),
        "mkdir /incoming/sub\n".to_owned(),
        "rm /finished/anything.csv\n".to_owned(),
        "rename /incoming/x.csv /finished/x.csv\n".to_owned(),
    ];

    for batch in &attempts {
        let out = env.sftp("acme", batch);

        assert!(!out.status.success(), "allowed: {batch}{}", text(&out));
    }
    assert!(!got.exists());
    let root = env.folders(&env.acme);
    for folder in [Folder::Finished, Folder::Exports] {
        assert!(!root.folder(folder).join("x.csv").exists());
    }
    assert!(!root.folder(Folder::Incoming).join("link").exists());
    assert!(!root.folder(Folder::Incoming).join("passwd").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_placed_on_disk_is_neither_listed_nor_followed() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let link = env.path(&env.acme, Folder::Exports, "passwd.csv");
    std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
    let got = env.dir.path().join("got");

    let listing = env.sftp("acme", "ls /exports\n");
    let get = env.sftp(
        "acme",
        &format!("get /exports/passwd.csv {}\n", got.display()),
    );

    assert!(
        !String::from_utf8_lossy(&listing.stdout).contains("passwd"),
        "{}",
        text(&listing)
    );
    assert!(!get.status.success(), "{}", text(&get));
    assert!(!got.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_files_are_invisible() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let secret = env.path(&env.acme, Folder::Exports, "acme-secret.csv");
    std::fs::write(&secret, "email\nann@a.example\n").expect("export");
    let got = env.dir.path().join("stolen");

    let listing = env.sftp("beta", "ls /exports\nls /incoming\nls /\n");
    let get = env.sftp(
        "beta",
        &format!("get /exports/acme-secret.csv {}\n", got.display()),
    );
    let sideways = env.sftp(
        "beta",
        &format!("get ../acme/exports/acme-secret.csv {}\n", got.display()),
    );

    assert!(listing.status.success(), "{}", text(&listing));
    assert!(
        !String::from_utf8_lossy(&listing.stdout).contains("acme"),
        "{}",
        text(&listing)
    );
    assert!(!get.status.success(), "{}", text(&get));
    assert!(!sideways.status.success(), "{}", text(&sideways));
    assert!(!got.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_uploads_are_not_imported() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let writes = env.exchange.as_ref().expect("started").writes.clone();
    let incoming = env.folders(&env.acme).folder(Folder::Incoming);
    // A file still open by an SFTP client, although its control file is there.
    std::fs::write(incoming.join("open.csv"), "email\nann@a.example\n").expect("open file");
    std::fs::write(incoming.join("open.csv.ctl"), "").expect("ctl");
    let guard = writes.begin(&incoming.join("open.csv"));
    let lonely = env.local("lonely.csv", "email\nann@a.example\n");
    let done = env.local("done.csv", "email\nbob@b.example\n");
    let ctl = env.local("done.csv.ctl", "");

    let out = env.sftp(
        "acme",
        &format!(
            "put {} /incoming/\nput {} /incoming/\nput {} /incoming/\n",
            lonely.display(),
            done.display(),
            ctl.display()
        ),
    );

    assert!(out.status.success(), "{}", text(&out));
    let finished = env.path(&env.acme, Folder::Finished, "done.csv");
    wait_until("the complete upload to be imported", || finished.exists()).await;
    assert!(
        incoming.join("lonely.csv").exists(),
        "no control file: never imported"
    );
    assert!(
        incoming.join("open.csv").exists(),
        "open for writing: not imported"
    );
    drop(guard);
    let released = env.path(&env.acme, Folder::Finished, "open.csv");
    wait_until("the released file to be imported", || released.exists()).await;
    assert!(incoming.join("lonely.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_account_logs_in_and_a_wrong_password_is_refused() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    env.add_password_user("acme", "acme-ops", "correct horse battery");

    let good = env.sftp_password("acme-ops", "correct horse battery", "ls /\n");
    let bad = env.sftp_password("acme-ops", "wrong", "ls /\n");

    assert!(good.status.success(), "{}", text(&good));
    assert!(
        String::from_utf8_lossy(&good.stdout).contains("incoming"),
        "{}",
        text(&good)
    );
    assert!(!bad.status.success(), "{}", text(&bad));
}
