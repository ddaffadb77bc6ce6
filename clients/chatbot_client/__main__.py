import sys

from chatbot_client.cli import main

sys.exit(main())
