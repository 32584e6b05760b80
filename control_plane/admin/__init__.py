"""The admin API (`/api/v1/admin`): dashboard, users, agents, moderation, system, audit log.

Routes in `routes.py`, each guarded by the seed's RBAC permission; mutations in `service.py`
and `system.py` write their audit row and the gateway's records in their own transaction.
"""
