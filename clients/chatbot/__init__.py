"""Generated from proto/chatbot/v1; do not edit."""
