"""ovsdbapp against an OVSDB server, the way os-vif and Neutron use it.

Run by tests/ovsdb_clients.rs with the venv's python:

    ovsdbapp_client.py REMOTE add BRIDGE PORT DATAPATH_TYPE
    ovsdbapp_client.py REMOTE del BRIDGE PORT

`add`: add_br, then one transaction with add_port + db_set of the
Interface's external_ids (as os-vif's ovs plugin does), then polls
db_get('Interface', PORT, 'ofport') until it is a valid OpenFlow port.
`del`: del_port, del_br. Each prints one JSON object with what it saw on
stdout; the Rust test checks it. Any exception, and any error ovsdbapp
only logs (its post-commit check that ovs-vswitchd's cur_cfg caught up
and that the new Interface got an ofport), exits non-zero.
"""

import json
import logging
import signal
import sys
import time

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl

EXTERNAL_IDS = {
    "iface-id": "5bd2a5e4-1b7c-4a45-9f22-3cbd7a3d0a01",
    "iface-status": "active",
    "attached-mac": "fa:16:3e:12:34:56",
    "vm-uuid": "0d8b6d7c-9a51-4d0b-8a63-1a2b3c4d5e6f",
}


class Errors(logging.Handler):
    """Collects the ERROR records ovsdbapp logs instead of raising."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.seen = []

    def emit(self, record):
        self.seen.append(self.format(record))


def ofport_of(api, port):
    """The Interface's ofport as an int, or None while it is unset."""
    v = api.db_get("Interface", port, "ofport").execute(check_error=True)
    if isinstance(v, list):
        v = v[0] if v else None
    return v


def main():
    signal.alarm(45)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    errors = Errors()
    logging.getLogger().addHandler(errors)

    remote, action, br, port = sys.argv[1:5]
    idl = connection.OvsdbIdl.from_server(remote, "Open_vSwitch")
    conn = connection.Connection(idl=idl, timeout=10)
    api = impl_idl.OvsdbIdl(conn)
    out = {}
    if action == "add":
        dp = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
        api.add_br(br, datapath_type=dp).execute(check_error=True)
        out["br_exists"] = api.br_exists(br).execute(check_error=True)
        with api.transaction(check_error=True) as txn:
            txn.add(api.add_port(br, port))
            txn.add(api.db_set("Interface", port, ("external_ids", EXTERNAL_IDS)))
        ofport = None
        end = time.monotonic() + 15
        while time.monotonic() < end:
            ofport = ofport_of(api, port)
            if isinstance(ofport, int) and ofport > 0:
                break
            time.sleep(0.2)
        out["ofport"] = ofport
        out["external_ids"] = api.db_get("Interface", port, "external_ids").execute(
            check_error=True
        )
        out["expected_external_ids"] = EXTERNAL_IDS
        out["ports"] = api.list_ports(br).execute(check_error=True)
        out["iface_to_br"] = api.port_to_br(port).execute(check_error=True)
    elif action == "del":
        api.del_port(port, bridge=br).execute(check_error=True)
        out["ports_after_del_port"] = api.list_ports(br).execute(check_error=True)
        api.del_br(br).execute(check_error=True)
        out["br_exists_after_del_br"] = api.br_exists(br).execute(check_error=True)
    else:
        sys.exit("unknown action " + action)
    out["logged_errors"] = errors.seen
    print(json.dumps(out), flush=True)
    if errors.seen:
        sys.exit("ovsdbapp logged errors: %s" % errors.seen)


if __name__ == "__main__":
    main()
