"""Every SQL statement of auth/: partner clients, the signing key, revoked tokens.
Functions take the session and return rows; the caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import OAuthClient, RevokedToken, StoredSigningKey

MAX_CLIENT_ID = 64  # the column's length: a longer id names no client, no query needed


async def client_by_id(session: AsyncSession, client_id: str) -> OAuthClient | None:
    if not client_id or len(client_id) > MAX_CLIENT_ID:
        return None
    return await session.get(OAuthClient, client_id)


async def add_client(session: AsyncSession, client: OAuthClient) -> None:
    session.add(client)
    await session.flush()


async def oldest_signing_key(session: AsyncSession) -> StoredSigningKey | None:
    return await session.scalar(select(StoredSigningKey).order_by(StoredSigningKey.created_at))


async def add_signing_key(session: AsyncSession, key: StoredSigningKey) -> None:
    """Keep `key` unless another replica stored one at the same moment."""
    try:
        async with session.begin_nested():
            session.add(key)
    except IntegrityError:  # pragma: no cover - another replica won the race just now
        pass


async def is_revoked(session: AsyncSession, jti: str) -> bool:
    return await session.get(RevokedToken, jti) is not None


async def live_revocations(session: AsyncSession, now: datetime) -> list[tuple[str, datetime]]:
    """(jti, expiry) of every revoked token that has not expired by `now`."""
    rows = await session.execute(
        select(RevokedToken.jti, RevokedToken.expires_at).where(RevokedToken.expires_at > now)
    )
    return [(jti, expires_at) for jti, expires_at in rows]


async def revoke(session: AsyncSession, jti: str, expires_at: datetime) -> None:
    """Record a revocation; revoking twice is the same as once."""
    if await session.get(RevokedToken, jti) is None:
        session.add(RevokedToken(jti=jti, expires_at=expires_at))
        await session.flush()
