"""``python -m rlplug [--list] [hydra overrides ...]``: train, or list the installed plugins."""

from __future__ import annotations

import sys


def main() -> int:
    from rlplug.errors import report_user_errors

    argv = sys.argv[1:]
    # Plugin discovery itself can fail on user input (two distributions claiming one name):
    # that, too, is a one-line error, also while importing the app (it registers config plugins).
    with report_user_errors("rlplug"):
        if argv[:1] in (["--list"], ["plugins"]):
            from rlplug.plugins import plugin_listing

            print(plugin_listing())
            return 0
        from rlplug.app import hydra_main
        from rlplug.cli import preflight

        preflight(argv)
    hydra_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
