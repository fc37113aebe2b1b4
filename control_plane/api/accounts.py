"""AccountService and AdminApiKeyService."""

from __future__ import annotations

from collections.abc import Callable

from keyway.v1 import accounts_pb2 as apb
from keyway.v1 import accounts_pb2_grpc, admin_api_keys_pb2_grpc
from keyway.v1 import admin_api_keys_pb2 as kpb

from control_plane.domain import masks
from control_plane.domain.errors import NotFound, PermissionDenied, Violations
from control_plane.domain.fields import check_common, require_id
from control_plane.domain.tokens import TokenKind
from control_plane.snapshots.publisher import Published
from control_plane.store.port import ACCOUNTS, ADMIN_KEYS, Store
from control_plane.store.records import Account, Credential, Labels

from .auth import Principal
from .base import (
    Options,
    Servicer,
    check_labels,
    common,
    masked,
    new_credential,
    next_token,
    page_args,
    rpc,
)

_ACCOUNT_FIELDS = {"display_name": "name", "description": "description", "metadata": "metadata"}
_KEY_FIELDS = {"name": "name", "description": "description", "metadata": "metadata"}


def snapshot_status(account: Account, latest: Published | None) -> apb.AccountSnapshotStatus:
    """Where the account's routing data stands in what the proxies are sent."""
    out = apb.AccountSnapshotStatus(
        published_version=latest.compiled.version if latest is not None else 0,
        snapshot_bytes=account.snapshot_bytes,
    )
    compiled = latest.accounts.get(account.id) if latest is not None else None
    if compiled is not None and compiled.quarantine is not None:
        q = compiled.quarantine
        out.state = apb.ACCOUNT_SNAPSHOT_STATE_QUARANTINED
        out.reason = q.reason
        out.problems.extend(
            apb.AccountSnapshotProblem(field=v.field, description=v.description)
            for v in q.violations
        )
        out.quarantined_version = q.version
        out.quarantine_time.FromMicroseconds(q.time_us)
        out.serving_previous = q.serving_previous
    elif compiled is not None and compiled.data_revision == account.data_revision:
        out.state = apb.ACCOUNT_SNAPSHOT_STATE_PUBLISHED
    else:
        out.state = apb.ACCOUNT_SNAPSHOT_STATE_PENDING
    return out


def account_message(account: Account, latest: Published | None = None) -> apb.Account:
    return apb.Account(
        display_name=account.fields.name,
        snapshot_status=snapshot_status(account, latest),
        **common(account),
    )


def admin_key_message(key: Credential) -> kpb.AdminApiKey:
    return kpb.AdminApiKey(
        account_id=key.account_id or "",
        name=key.fields.name,
        redacted_token=key.redacted_token,
        **common(key),
    )


def _labels(message: apb.Account | kpb.AdminApiKey, name: str) -> Labels:
    return Labels(name=name, description=message.description, metadata=message.metadata)


def _check_account(account: apb.Account) -> None:
    v = Violations()
    check_common(
        v,
        "",
        name=account.display_name,
        description=account.description,
        metadata=account.metadata,
        name_field="display_name",
    )
    v.raise_if_any()


class AccountServicer(Servicer, accounts_pb2_grpc.AccountServiceServicer):
    def __init__(
        self, store: Store, options: Options, published: Callable[[], Published | None]
    ) -> None:
        super().__init__(store, options)
        self._published = published

    def _message(self, account: Account) -> apb.Account:
        return account_message(account, self._published())

    @rpc
    def CreateAccount(
        self, request: apb.CreateAccountRequest, who: Principal
    ) -> apb.CreateAccountResponse:
        who.require_operator()
        a = request.account
        _check_account(a)
        account = self.store.create_account(_labels(a, a.display_name))
        return apb.CreateAccountResponse(account=self._message(account))

    @rpc
    def GetAccount(self, request: apb.GetAccountRequest, who: Principal) -> apb.GetAccountResponse:
        account_id = request.id or who.account()
        if not who.may_act_on(account_id):
            raise NotFound(f"account '{account_id}' not found")
        return apb.GetAccountResponse(
            account=self._message(self.store.get(ACCOUNTS, account_id, None))
        )

    @rpc
    def ListAccounts(
        self, request: apb.ListAccountsRequest, who: Principal
    ) -> apb.ListAccountsResponse:
        who.require_operator()
        page = self.store.list_accounts(**page_args(request.page_size, request.page_token))
        return apb.ListAccountsResponse(
            accounts=[self._message(a) for a in page.items], next_page_token=next_token(page)
        )

    @rpc
    def UpdateAccount(
        self, request: apb.UpdateAccountRequest, who: Principal
    ) -> apb.UpdateAccountResponse:
        who.require_operator()
        a = request.account
        require_id(a.id, "account.id")
        chosen = masked(a, request.update_mask, _ACCOUNT_FIELDS)
        current = self.store.get(ACCOUNTS, a.id, None)
        merged = masks.merge(account_message(current), a, chosen)
        check_labels(merged, name_field="display_name")
        fields = _labels(merged, merged.display_name)
        account = self.store.update(ACCOUNTS, a.id, None, fields, chosen.values(), a.etag)
        return apb.UpdateAccountResponse(account=self._message(account))

    @rpc
    def DeleteAccount(
        self, request: apb.DeleteAccountRequest, who: Principal
    ) -> apb.DeleteAccountResponse:
        who.require_operator()
        self.store.delete_account(require_id(request.id), etag=request.etag, force=request.force)
        return apb.DeleteAccountResponse()


class AdminApiKeyServicer(Servicer, admin_api_keys_pb2_grpc.AdminApiKeyServiceServicer):
    def _account(self, requested: str, who: Principal) -> str:
        if not requested and who.kind is TokenKind.OPERATOR:
            raise PermissionDenied(
                "the operator token belongs to no account: name one in account_id "
                "(`--account ACCOUNT_ID` in the CLI; `keyway admin accounts list` shows them)"
            )
        account_id = requested or who.account()
        if not who.may_act_on(account_id):
            raise NotFound(f"account '{account_id}' not found")
        return account_id

    def _key(self, key_id: str, who: Principal) -> Credential:
        key = self.store.get(ADMIN_KEYS, require_id(key_id), None)
        if key.account_id is None or not who.may_act_on(key.account_id):
            raise NotFound(f"admin API key '{key_id}' not found")
        return key

    @rpc
    def CreateAdminApiKey(
        self, request: kpb.CreateAdminApiKeyRequest, who: Principal
    ) -> kpb.CreateAdminApiKeyResponse:
        account_id = self._account(request.account_id, who)
        k = request.admin_api_key
        key, token = new_credential(
            self.store, TokenKind.ADMIN, _labels(k, k.name), account_id=account_id
        )
        return kpb.CreateAdminApiKeyResponse(admin_api_key=admin_key_message(key), token=token)

    @rpc
    def GetAdminApiKey(
        self, request: kpb.GetAdminApiKeyRequest, who: Principal
    ) -> kpb.GetAdminApiKeyResponse:
        return kpb.GetAdminApiKeyResponse(
            admin_api_key=admin_key_message(self._key(request.id, who))
        )

    @rpc
    def ListAdminApiKeys(
        self, request: kpb.ListAdminApiKeysRequest, who: Principal
    ) -> kpb.ListAdminApiKeysResponse:
        account_id = self._account(request.account_id, who)
        args = page_args(request.page_size, request.page_token, account_id)
        page = self.store.list_credentials(TokenKind.ADMIN, account_id=account_id, **args)
        return kpb.ListAdminApiKeysResponse(
            admin_api_keys=[admin_key_message(k) for k in page.items],
            next_page_token=next_token(page, account_id),
        )

    @rpc
    def UpdateAdminApiKey(
        self, request: kpb.UpdateAdminApiKeyRequest, who: Principal
    ) -> kpb.UpdateAdminApiKeyResponse:
        k = request.admin_api_key
        current = self._key(k.id, who)
        chosen = masked(k, request.update_mask, _KEY_FIELDS)
        merged = masks.merge(admin_key_message(current), k, chosen)
        check_labels(merged)
        fields = _labels(merged, merged.name)
        key = self.store.update(
            ADMIN_KEYS, k.id, current.account_id, fields, chosen.values(), k.etag
        )
        return kpb.UpdateAdminApiKeyResponse(admin_api_key=admin_key_message(key))

    @rpc
    def DeleteAdminApiKey(
        self, request: kpb.DeleteAdminApiKeyRequest, who: Principal
    ) -> kpb.DeleteAdminApiKeyResponse:
        key = self._key(request.id, who)
        self.store.delete(ADMIN_KEYS, key.id, key.account_id, request.etag)
        return kpb.DeleteAdminApiKeyResponse()
