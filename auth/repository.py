"""Every SQL statement of auth/: partner clients, the signing key, revoked tokens.
Functions take the session and return rows; the caller commits."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import OAuthClient, RevokedToken, StoredSigningKey

IN_BATCH = 500  # values in one IN list
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


async def revoked_among(session: AsyncSession, jtis: Collection[str]) -> set[str]:
    """Which of `jtis` are revoked, in batches of `IN_BATCH`."""
    wanted = sorted(set(jtis))
    found: set[str] = set()
    for start in range(0, len(wanted), IN_BATCH):
        batch = wanted[start : start + IN_BATCH]
        rows = await session.scalars(select(RevokedToken.jti).where(RevokedToken.jti.in_(batch)))
        found.update(rows)
    return found


async def revoke(session: AsyncSession, jti: str, expires_at: datetime) -> None:
    """Record a revocation; revoking twice is the same as once."""
    if await session.get(RevokedToken, jti) is None:
        session.add(RevokedToken(jti=jti, expires_at=expires_at))
        await session.flush()
