"""The control port: health, readiness, metrics and Exotel's dynamic stream URL.
``app`` routes a parsed request (no I/O); ``http`` serves it over HTTP/1.1."""

from server.control.app import ControlApp, Response, custom_parameters, stream_url
from server.control.http import handle_control_connection, serve_control

__all__ = ["ControlApp", "Response", "custom_parameters", "handle_control_connection",
           "serve_control", "stream_url"]
