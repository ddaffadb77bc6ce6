import sys

from chatbot_server.cli import main

sys.exit(main())
