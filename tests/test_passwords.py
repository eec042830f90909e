"""argon2id hashing: libsodium computes what it can, argon2-cffi the rest, one string format."""

import threading

import argon2
import pytest
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import hash_secret
from nacl import bindings as sodium

from auth_service.security import passwords
from auth_service.security.passwords import PasswordHasher
from config import TestingConfig

PASSWORD = "correct horse battery staple"
CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1, "type": Type.ID}


@pytest.fixture
def sodium_calls(monkeypatch):
    """Names of the libsodium functions called, in order."""
    calls = []
    for name in ("crypto_pwhash_str_alg", "crypto_pwhash_str_verify"):

        def spy(*args, _real=getattr(sodium, name), _name=name):  # noqa: B008 (binds this name)
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(passwords.sodium, name, spy)
    return calls


def _assert_verifies(hasher, encoded, password=PASSWORD):
    assert hasher.verify(encoded, password) is True
    with pytest.raises(VerifyMismatchError):
        hasher.verify(encoded, password + "!")


@pytest.mark.parametrize(
    "parameters",
    [CHEAP, {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}],
    ids=["cheap", "production"],
)
def test_libsodium_hash_is_the_argon2_cffi_format(sodium_calls, parameters):
    hasher = PasswordHasher(**parameters)
    encoded = hasher.hash(PASSWORD)
    assert sodium_calls == ["crypto_pwhash_str_alg"]
    found = argon2.extract_parameters(encoded)
    assert (
        found.type,
        found.version,
        found.time_cost,
        found.memory_cost,
        found.parallelism,
        found.salt_len,
        found.hash_len,
    ) == (Type.ID, 19, hasher.time_cost, hasher.memory_cost, 1, 16, 32)
    # Same string, same answers, both ways; and no upgrade for a hash of the current kind.
    _assert_verifies(argon2.PasswordHasher(**parameters), encoded)
    _assert_verifies(hasher, argon2.PasswordHasher(**parameters).hash(PASSWORD))
    assert not hasher.check_needs_rehash(encoded)


def test_salts_are_fresh(sodium_calls):
    hasher = PasswordHasher(**CHEAP)
    assert len({hasher.hash(PASSWORD) for _ in range(5)}) == 5


@pytest.mark.parametrize("password", ["pässwörd ünïcødé", "nul\x00inside", "🔑" * 40])
def test_passwords_encode_the_same_way(password):
    ours, reference = PasswordHasher(**CHEAP), argon2.PasswordHasher(**CHEAP)
    _assert_verifies(reference, ours.hash(password), password)
    _assert_verifies(ours, reference.hash(password), password)


@pytest.mark.parametrize(
    "kwargs",
    [{"parallelism": 2}, {"salt_len": 8}, {"hash_len": 16}, {"memory_cost": 9, "time_cost": 3}],
    ids=["two_lanes", "short_salt", "short_hash", "odd_costs"],
)
def test_other_argon2id_hashes_verify_through_libsodium(sodium_calls, kwargs):
    encoded = argon2.PasswordHasher(**{**CHEAP, "memory_cost": 16, **kwargs}).hash(PASSWORD)
    _assert_verifies(PasswordHasher(**CHEAP), encoded)
    assert sodium_calls == ["crypto_pwhash_str_verify"] * 2


@pytest.mark.parametrize(
    "encoded",
    [
        argon2.PasswordHasher(**{**CHEAP, "type": Type.I}).hash(PASSWORD),
        argon2.PasswordHasher(**{**CHEAP, "type": Type.D}).hash(PASSWORD),
        hash_secret(
            PASSWORD.encode(), b"saltsaltsaltsalt", 1, 8, 1, 32, Type.ID, version=0x10
        ).decode(),
        argon2.PasswordHasher(**CHEAP, salt_len=32, hash_len=64).hash(PASSWORD),
    ],
    ids=["argon2i", "argon2d", "version_0x10", "too_long_for_libsodium"],
)
def test_what_libsodium_cannot_read_stays_with_argon2_cffi(sodium_calls, encoded):
    _assert_verifies(PasswordHasher(**CHEAP), encoded)
    assert sodium_calls == []


@pytest.mark.parametrize(
    "kwargs",
    [{"parallelism": 2}, {"salt_len": 32}, {"hash_len": 64}, {"type": Type.I, "time_cost": 3}],
    ids=["two_lanes", "long_salt", "long_hash", "argon2i"],
)
def test_parameters_libsodium_does_not_write_are_hashed_by_argon2_cffi(sodium_calls, kwargs):
    hasher = PasswordHasher(**{**CHEAP, "memory_cost": 16, **kwargs})
    encoded = hasher.hash(PASSWORD)
    assert "crypto_pwhash_str_alg" not in sodium_calls
    assert not hasher.check_needs_rehash(encoded)
    _assert_verifies(hasher, encoded)
    _assert_verifies(argon2.PasswordHasher(**{**CHEAP, "memory_cost": 16, **kwargs}), encoded)


def test_an_explicit_salt_is_used():
    encoded = PasswordHasher(**CHEAP).hash(PASSWORD, salt=b"0123456789abcdef")
    assert encoded == argon2.PasswordHasher(**CHEAP).hash(PASSWORD, salt=b"0123456789abcdef")


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=8,t=1,p=1$",
        "$argon2id$v=19$m=8,t=1,p=1$!!!$!!!",
        b"\xff\xfe$argon2id",
    ],
)
def test_malformed_hashes_are_refused(app, encoded):
    with pytest.raises((InvalidHashError, VerificationError)):
        PasswordHasher(**CHEAP).verify(encoded, PASSWORD)
    with app.app_context():
        assert passwords.verify_password(encoded, PASSWORD) is False


def test_a_damaged_hash_is_a_mismatch(app):
    encoded = PasswordHasher(**CHEAP).hash(PASSWORD)
    damaged = encoded[:-6] + ("A" if encoded[-6] != "A" else "B") + encoded[-5:]
    with pytest.raises(VerifyMismatchError):
        PasswordHasher(**CHEAP).verify(damaged, PASSWORD)
    with app.app_context():
        assert passwords.verify_password(encoded, PASSWORD) is True
        assert passwords.verify_password(damaged, PASSWORD) is False


# --- hashing slots (ARGON2_CONCURRENCY) ----------------------------------------------


class GatedHasher:
    """Stands in for the app's hasher: every hash and verify waits at one gate, and the
    most callers inside at once is recorded."""

    time_cost, memory_cost = TestingConfig.ARGON2_TIME_COST, TestingConfig.ARGON2_MEMORY_COST

    def __init__(self):
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.inside = self.most_inside = 0

    def _wait_at_gate(self):
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.release()
        self.gate.wait(timeout=30)
        with self.lock:
            self.inside -= 1

    def hash(self, password):
        self._wait_at_gate()
        return "hashed"

    def verify(self, encoded, password):
        self._wait_at_gate()
        return True


@pytest.mark.parametrize("concurrency", [1, 2, 0], ids=["one", "two", "one-per-core"])
def test_hashes_beyond_the_concurrency_wait_for_a_slot(make_app, concurrency):
    class Limited(TestingConfig):
        ARGON2_CONCURRENCY = concurrency

    slots = concurrency or passwords.available_cores()
    app = make_app(Limited)
    gated = GatedHasher()
    app.extensions["password_hasher"] = gated
    results = []

    def login_or_signup(i):
        with app.app_context():  # logins (verify) and signups (hash) share the slots
            results.append(
                passwords.verify_password("stored", PASSWORD)
                if i % 2
                else passwords.hash_password(PASSWORD)
            )

    threads = [threading.Thread(target=login_or_signup, args=(i,)) for i in range(slots + 2)]
    for thread in threads:
        thread.start()
    for _ in range(slots):
        assert gated.entered.acquire(timeout=30)
    # Two more threads want to hash: they wait for a slot instead of starting.
    assert not gated.entered.acquire(timeout=0.3)
    assert gated.inside == slots
    gated.gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert gated.most_inside == slots
    assert sorted(results, key=str) == sorted(
        [True] * ((slots + 2) // 2) + ["hashed"] * ((slots + 3) // 2), key=str
    )


def test_a_failed_hash_gives_its_slot_back(make_app):
    class One(TestingConfig):
        ARGON2_CONCURRENCY = 1

    app = make_app(One)
    slots = app.extensions["password_hash_slots"]
    with app.app_context():
        # A damaged hash raises inside the hasher, holding the only slot.
        assert passwords.verify_password("$argon2id$v=19$m=8,t=1,p=1$!!!$!!!", PASSWORD) is False
    # Given back: taken here at once (a slot kept would time out, not hang the suite).
    assert slots.acquire(timeout=5)
    slots.release()


# --- login work after a parameter change ----------------------------------------------


@pytest.fixture
def argon2_work(monkeypatch):
    """The argon2 blocks (time x memory) computed since the last reset: ``work.blocks``."""

    class Work:
        blocks = 0

    def verify(self, encoded, password, _real=PasswordHasher.verify):
        Work.blocks += passwords.argon2_blocks(argon2.extract_parameters(encoded))
        return _real(self, encoded, password)

    def hash(self, password, *, salt=None, _real=PasswordHasher.hash):
        Work.blocks += passwords.argon2_blocks(self)
        return _real(self, password, salt=salt)

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    monkeypatch.setattr(PasswordHasher, "hash", hash)
    return Work


def login(client, email, password=PASSWORD):
    return client.post("/auth/login", json={"email": email, "password": password})


@pytest.mark.parametrize(
    "old, new",
    [((1, 8), (2, 16)), ((1, 16), (3, 16)), ((2, 8), (2, 24))],
    ids=["both_raised", "time_raised", "memory_raised"],
)
def test_a_failed_login_costs_the_same_whatever_the_hash_age(
    make_app, in_db, argon2_work, old, new
):
    def app_with(time_cost, memory_cost):
        return make_app(
            type(
                "Params",
                (TestingConfig,),
                {"ARGON2_TIME_COST": time_cost, "ARGON2_MEMORY_COST": memory_cost},
            )
        )

    before, after = app_with(*old).test_client(), app_with(*new).test_client()
    signup = {"password": PASSWORD, "full_name": None}
    assert (
        before.post(
            "/auth/signup", json={"email": "old@example.com", "username": "old", **signup}
        ).status_code
        == 201
    )
    assert (
        after.post(
            "/auth/signup", json={"email": "new@example.com", "username": "new", **signup}
        ).status_code
        == 201
    )

    blocks = {}
    for email in ("nobody@example.com", "old@example.com", "new@example.com"):
        argon2_work.blocks = 0
        assert login(after, email, "wrong password").status_code == 401
        blocks[email] = argon2_work.blocks

    # An unknown email costs what an account with a hash from before the change costs.
    current = new[0] * new[1]
    assert blocks == {
        "nobody@example.com": current,
        "old@example.com": current,
        "new@example.com": current,
    }
    argon2_work.blocks = 0
    assert login(after, "old@example.com").status_code == 200  # and the hash is upgraded
    assert argon2_work.blocks == 2 * current
