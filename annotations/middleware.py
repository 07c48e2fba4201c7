"""Login everywhere, the demo's automatic login, and the Content-Security-Policy header."""

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth.middleware import LoginRequiredMiddleware


class LoginRequiredEverywhereMiddleware(LoginRequiredMiddleware):
    """Every page needs a login; the API answers 401/403 itself (token or session auth)."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class DemoAutoLoginMiddleware:
    """Logs anonymous visitors in as SPIDER_DEMO_AUTOLOGIN_USER (settings allow it with DEBUG
    only), so the local demo opens logged in.

    Not a request that brings its own credentials (an ``Authorization`` header) nor one to
    the token endpoints: logged in by session, such a request was taken as the demo user
    and its POSTs refused for want of a CSRF cookie, so the README's token example failed
    on the demo."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.username = settings.DEMO_AUTOLOGIN_USER

    def __call__(self, request):
        if (self.username and not request.user.is_authenticated
                and "HTTP_AUTHORIZATION" not in request.META
                and not request.path_info.startswith("/api/auth/")):
            user = get_user_model().objects.filter(username=self.username).first()
            if user is not None:
                login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Adds SPIDER_CONTENT_SECURITY_POLICY to every response that has none of its own: with
    ``script-src 'self'`` an injected ``<script>`` or ``onclick=`` does not run."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.SPIDER_CONTENT_SECURITY_POLICY  # read each time: tests change it
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
