//! The streams: decrypting a message while it is read, and encrypting one while
//! it is written. Both hold a bounded amount of data whatever the file's size.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use pgp::composed::{
    ArmorOptions, DecryptionOptions, Message, MessageBuilder, SignedSecretKey, TheRing,
};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::errors::Error as PgpCrateError;
use pgp::types::{CompressionAlgorithm, KeyDetails, Password, Seipdv1ReadMode};
use pgp_rand::OsRng;

use super::{CustomerKey, PgpError};

/// Read buffer over the encrypted file.
const READ_BUFFER: usize = 64 * 1024;
/// Bytes the encrypting writer collects before handing them to its thread.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight to the encrypting thread: with `CHUNK`, at most ~256 KiB.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Opens an OpenPGP message (binary or ASCII-armored) encrypted to `key` and
/// returns its plaintext as a reader. Only the session key is decrypted here;
/// the data is decrypted (and decompressed) as it is read, so a damaged file may
/// also fail later, as a read error that [`PlainReader::is_decrypt_error`] names.
///
/// SEIPD v1 is read in rPGP's streaming mode: its default reads the whole
/// message into memory to check the MDC before releasing any plaintext (peak RSS
/// grew by the file's size). Streaming releases plaintext before the integrity
/// check at the end, which is safe here because an import commits nothing until
/// its source has been read to the end without error: a tampered file fails
/// there and is refused as a whole.
pub fn decrypting_reader<R>(source: R, key: &SignedSecretKey) -> Result<PlainReader, PgpError>
where
    R: Read + Send + fmt::Debug + 'static,
{
    let source = BufReader::with_capacity(READ_BUFFER, source);
    let not_pgp = |e: PgpCrateError| PgpError::Decrypt(format!("not an OpenPGP message ({e})"));
    let (message, _) = Message::from_reader(source).map_err(not_pgp)?;
    if !message.is_encrypted() {
        return Err(PgpError::Decrypt(
            "the file is OpenPGP but not encrypted".into(),
        ));
    }
    let password = Password::empty();
    let ring = TheRing {
        secret_keys: vec![key],
        key_passwords: vec![&password],
        decrypt_options: DecryptionOptions::new().set_seipdv1_read_mode(Seipdv1ReadMode::Streaming),
        ..Default::default()
    };
    let (mut message, _) = message.decrypt_the_ring(ring, true).map_err(|e| match e {
        PgpCrateError::MissingKey => PgpError::Decrypt(format!(
            "the file is not encrypted to this tenant's key {:X}",
            key.fingerprint()
        )),
        e => PgpError::Decrypt(e.to_string()),
    })?;
    if message.is_compressed() {
        message = message
            .decompress()
            .map_err(|e| PgpError::Decrypt(format!("cannot decompress: {e}")))?;
    }
    Ok(PlainReader { message })
}

/// The plaintext of a message being decrypted. Every read error it returns
/// carries a [`StreamError`], so callers can tell a damaged file (refuse it)
/// from other failures.
pub struct PlainReader {
    message: Message<'static>,
}

impl fmt::Debug for PlainReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainReader")
    }
}

impl PlainReader {
    /// Whether `error` came from decrypting (a damaged or tampered file).
    pub fn is_decrypt_error(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<StreamError>())
    }
}

impl Read for PlainReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.message.read(buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                StreamError(format!("cannot decrypt: {e}")),
            )
        })
    }
}

/// A failure while decrypting the data (integrity check, decompression,
/// truncation).
#[derive(Debug)]
struct StreamError(String);

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StreamError {}

/// What the writer hands its thread.
enum Chunk {
    Data(Vec<u8>),
    /// `finish` was called: the plaintext is complete.
    End,
}

/// Encrypts what is written to it to a customer's key and writes the message
/// to `inner`. Call [`EncryptingWriter::finish`]: a writer dropped without it
/// makes the message fail instead of ending it early, so a half-written export
/// never decrypts to a truncated file.
pub struct EncryptingWriter<W> {
    buffer: Vec<u8>,
    sender: Option<SyncSender<Chunk>>,
    worker: Option<JoinHandle<Result<W, PgpError>>>,
}

impl<W> fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptingWriter")
    }
}

/// Wraps `inner` so that what is written comes out as an OpenPGP message
/// (SEIPD v1, AES-256, ZLIB) encrypted to `recipient`, binary or ASCII-armored.
/// rPGP's encoder pulls from a reader, so it runs on a thread of its own fed
/// through a bounded channel.
pub fn encrypting_writer<W>(
    inner: W,
    recipient: &CustomerKey,
    armored: bool,
) -> Result<EncryptingWriter<W>, PgpError>
where
    W: Write + Send + 'static,
{
    let (sender, receiver) = sync_channel(CHUNKS_IN_FLIGHT);
    let subkey = recipient.subkey().clone();
    let worker = std::thread::Builder::new()
        .name("pgp-encrypt".into())
        .spawn(move || {
            let mut inner = inner;
            let reader = ChannelReader {
                receiver,
                chunk: Vec::new(),
                at: 0,
                ended: false,
            };
            let mut builder = MessageBuilder::from_reader("", reader)
                .seipd_v1(OsRng, SymmetricKeyAlgorithm::AES256);
            builder.compression(CompressionAlgorithm::ZLIB);
            let failed = |e: PgpCrateError| PgpError::Encrypt(e.to_string());
            builder.encrypt_to_key(OsRng, &subkey).map_err(failed)?;
            match armored {
                true => builder.to_armored_writer(OsRng, ArmorOptions::default(), &mut inner),
                false => builder.to_writer(OsRng, &mut inner),
            }
            .map_err(failed)?;
            inner
                .flush()
                .map_err(|e| PgpError::Encrypt(e.to_string()))?;
            Ok(inner)
        })
        .map_err(|e| PgpError::Encrypt(format!("cannot start the encrypting thread: {e}")))?;
    Ok(EncryptingWriter {
        buffer: Vec::with_capacity(CHUNK),
        sender: Some(sender),
        worker: Some(worker),
    })
}

impl<W> EncryptingWriter<W> {
    /// Ends the message and returns the inner writer, flushed.
    pub fn finish(mut self) -> Result<W, PgpError> {
        self.send_buffer()
            .and_then(|()| self.send(Chunk::End))
            .map_err(|e| PgpError::Encrypt(e.to_string()))
            .and(self.join())
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.send(Chunk::Data(full))
    }

    fn send(&mut self, chunk: Chunk) -> io::Result<()> {
        let sent = self.sender.as_ref().map(|s| s.send(chunk));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped early: its error says why.
            _ => Err(match self.join() {
                Err(e) => io::Error::other(e),
                Ok(_) => io::Error::other("the encrypting thread ended early"),
            }),
        }
    }

    fn join(&mut self) -> Result<W, PgpError> {
        self.sender = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(PgpError::Encrypt("the encrypting thread panicked".into())),
            None => Err(PgpError::Encrypt("the message was already ended".into())),
        }
    }
}

impl<W> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    /// Hands buffered bytes to the thread; the message is only complete after
    /// [`EncryptingWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

impl<W> Drop for EncryptingWriter<W> {
    fn drop(&mut self) {
        // Disconnecting without `End` makes the thread's reader fail.
        self.sender = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The plaintext side of the encrypting thread.
struct ChannelReader {
    receiver: Receiver<Chunk>,
    chunk: Vec<u8>,
    at: usize,
    /// `End` arrived: every later read is the end of the input too.
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            match self.receiver.recv() {
                Ok(Chunk::Data(chunk)) => (self.chunk, self.at) = (chunk, 0),
                Ok(Chunk::End) => self.ended = true,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the encrypting writer was dropped before finish",
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
